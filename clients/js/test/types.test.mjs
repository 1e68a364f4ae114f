// The TypeScript frame types of src/protocol.ts against docs/schemas/: same
// fields, same optionality, compatible types, same frame names and codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { ERROR_CODES, DEFAULT_DIALECT } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const schema = (path) => JSON.parse(readFileSync(join(here, "..", "..", "..", "docs", "schemas", path), "utf8"));
const source = ts.createSourceFile("protocol.ts", readFileSync(join(here, "..", "src", "protocol.ts"), "utf8"), ts.ScriptTarget.ES2022, true);

/** The declarations of src/protocol.ts by name. */
const declarations = new Map();
source.forEachChild((node) => {
  if (ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) declarations.set(node.name.text, node);
});

/** An interface's fields: name → { optional, type (source text) }. */
function fields(name) {
  const node = declarations.get(name);
  assert.ok(node && ts.isInterfaceDeclaration(node), `interface ${name} in src/protocol.ts`);
  const out = {};
  for (const member of node.members) {
    if (!ts.isPropertySignature(member)) continue;
    out[member.name.getText(source)] = { optional: member.questionToken !== undefined, type: member.type.getText(source) };
  }
  return out;
}

/** Whether a TypeScript type text fits a JSON Schema property. */
function compatible(tsType, prop) {
  // ServerEnvelope<T, P>: T is the frame's literal (checked per frame below).
  if (tsType === "T") return typeof prop.const === "string";
  if (prop.const !== undefined || prop.enum !== undefined) {
    const values = prop.const !== undefined ? [prop.const] : prop.enum;
    if (tsType === "string") return values.every((v) => typeof v === "string");
    const alias = declarations.get(tsType);
    const text = alias && ts.isTypeAliasDeclaration(alias) ? alias.type.getText(source) : tsType;
    const literals = [...text.matchAll(/"([^"]*)"/g)].map((m) => m[1]).sort();
    return JSON.stringify(literals) === JSON.stringify([...values].sort());
  }
  switch (prop.type) {
    case "string":
      return tsType === "string";
    case "integer":
    case "number":
      return tsType === "number";
    case "object":
      return tsType.startsWith("Record<string") || tsType === "P" || declarations.has(tsType);
    case undefined:
      return tsType === "unknown";
    default:
      return false;
  }
}

/** Asserts that `name`'s fields are exactly `object`'s properties, with the same optionality. */
function assertMatches(name, object, where) {
  const f = fields(name);
  assert.deepEqual(Object.keys(f).sort(), Object.keys(object.properties).sort(), `${name} vs ${where}: fields`);
  for (const [key, { optional, type }] of Object.entries(f)) {
    assert.equal(optional, !(object.required ?? []).includes(key), `${name}.${key} optionality vs ${where}`);
    assert.ok(compatible(type, object.properties[key]), `${name}.${key}: ${type} vs ${JSON.stringify(object.properties[key])} (${where})`);
  }
}

const SERVER = {
  "server/authenticated.json": ["AuthenticatedFrame", "AuthenticatedPayload", "authenticated"],
  "server/auth_required.json": ["AuthRequiredFrame", "AuthRequiredPayload", "authRequired"],
  "server/token_expired.json": ["TokenExpiredFrame", "TokenExpiredPayload", "tokenExpired"],
  "server/error.json": ["ErrorFrame", "ErrorPayload", "error"],
  "server/reconnect.json": ["ReconnectFrame", "ReconnectPayload", "reconnect"],
  "server/idle_warning.json": ["IdleWarningFrame", "IdleWarningPayload", "idleWarning"],
};

test("frame types match the schemas: the frames wsguard writes", () => {
  for (const [file, [frame, payload, dialectKey]] of Object.entries(SERVER)) {
    const s = schema(file);
    assertMatches("ServerEnvelope", s, file);
    assertMatches(payload, s.properties.payload, `${file} payload`);
    const alias = declarations.get(frame);
    assert.ok(alias && ts.isTypeAliasDeclaration(alias), `type ${frame}`);
    const [kind, of] = alias.type.typeArguments.map((t) => t.getText(source));
    assert.equal(kind, JSON.stringify(s.properties.type.const), `${frame}'s type vs ${file}`);
    assert.equal(of, payload);
    assert.equal(DEFAULT_DIALECT[dialectKey], s.properties.type.const, `DEFAULT_DIALECT.${dialectKey}`);
  }
  assert.deepEqual([...ERROR_CODES].sort(), [...schema("server/error.json").properties.payload.properties.code.enum].sort());
  const union = declarations.get("ServerFrame").type.getText(source);
  for (const [frame] of Object.values(SERVER)) assert.match(union, new RegExp(`\\b${frame}\\b`), `ServerFrame includes ${frame}`);
});

test("frame types match the schemas: the client's auth and REAUTH", () => {
  for (const file of ["client/auth.json", "client/reauth.json"]) {
    const s = schema(file);
    assertMatches("ClientTokenFrame", { ...s, properties: { ...s.properties, type: { type: "string" } } }, file);
    assertMatches("TokenPayload", s.properties.payload, `${file} payload`);
  }
  assert.ok(schema("client/auth.json").properties.type.enum.includes(DEFAULT_DIALECT.auth));
  assert.ok(schema("client/reauth.json").properties.type.enum.includes(DEFAULT_DIALECT.reauth));
});

test("the comparison fails on a mismatch", () => {
  const s = schema("server/authenticated.json").properties.payload;
  const missing = { ...s, properties: { ...s.properties, extra: { type: "string" } } };
  assert.throws(() => assertMatches("AuthenticatedPayload", missing, "altered"));
  const optional = { ...s, required: s.required.filter((k) => k !== "sub") };
  assert.throws(() => assertMatches("AuthenticatedPayload", optional, "altered"));
  const typed = { ...s, properties: { ...s.properties, exp: { type: "string" } } };
  assert.throws(() => assertMatches("AuthenticatedPayload", typed, "altered"));
});
