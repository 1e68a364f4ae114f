//! Kubernetes YAML as an ordered tree: parsed with serde-saphyr under the
//! rules Kubernetes reads YAML with (YAML 1.1: `0644` is octal, bare
//! `yes`/`on` are booleans) and written back with YAML 1.1 quoting (a
//! string `"on"` stays quoted), key order and unknown fields preserved.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One YAML node. Mappings keep their keys in the order read.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false` (YAML 1.1 spellings too).
    Bool(bool),
    /// An integer that fits an `i64`.
    Int(i64),
    /// A non-negative integer over `i64::MAX`.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string (however it was quoted).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order of its keys.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The value under the string key `key`, if this is a mapping holding it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Mutable access to the value under `key`.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under `key`, inserted at the end as `default()` when absent
    /// (or null); `None` when this is not a mapping.
    pub fn entry(&mut self, key: &str, default: impl FnOnce() -> Node) -> Option<&mut Node> {
        let Node::Map(entries) = self else {
            return None;
        };
        let at = match entries.iter().position(|(k, _)| k.as_str() == Some(key)) {
            Some(at) => at,
            None => {
                entries.push((Node::from(key), Node::Null));
                entries.len() - 1
            }
        };
        let slot = &mut entries[at].1;
        if *slot == Node::Null {
            *slot = default();
        }
        Some(slot)
    }

    /// Sets `key` to `value` (in place if present, else appended).
    pub fn set(&mut self, key: &str, value: Node) {
        if let Some(slot) = self.entry(key, || Node::Null) {
            *slot = value;
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Node::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match self {
            Node::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// A string at a path of keys, if every step is there.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        path.iter()
            .try_fold(self, |node, key| node.get(key))?
            .as_str()
    }

    /// A mapping built from string keys.
    pub fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
        Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Node::from(k), v))
                .collect(),
        )
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Node {
        Node::Str(s.to_owned())
    }
}

impl From<String> for Node {
    fn from(s: String) -> Node {
        Node::Str(s)
    }
}

impl From<i64> for Node {
    fn from(i: i64) -> Node {
        Node::Int(i)
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Node {
        Node::Bool(b)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Int(i) => s.serialize_i64(*i),
            Node::UInt(u) => s.serialize_u64(*u),
            Node::Float(f) => s.serialize_f64(*f),
            Node::Str(v) => s.serialize_str(v),
            Node::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Builds a [`Node`] from whatever the deserializer finds.
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node, E> {
        Ok(Node::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Node, E> {
        Ok(i64::try_from(u).map_or(Node::UInt(u), Node::Int))
    }
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Node, E> {
        if let Ok(i) = i64::try_from(i) {
            return Ok(Node::Int(i));
        }
        u64::try_from(i).map(Node::UInt).map_err(|_| {
            E::custom(format!(
                "integer {i} is out of range (Kubernetes takes 64 bits)"
            ))
        })
    }
    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Node, E> {
        self.visit_i128(i128::try_from(u).unwrap_or(i128::MAX))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Node, E> {
        Ok(Node::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Parses one YAML document the way Kubernetes reads it.
pub fn parse(text: &str) -> Result<Node, String> {
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())
}

/// Writes one document (no `---`), YAML 1.1 quoting, two-space indentation.
pub fn emit(node: &Node) -> Result<String, String> {
    let options = serde_saphyr::ser_options! {
        indent_step: 2,
        folded_wrap_chars: usize::MAX,
    };
    serde_saphyr::to_string_with_options(node, options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str) -> String {
        emit(&parse(text).expect("parses")).expect("emits")
    }

    #[test]
    fn traps() {
        let text = "a: \"on\"\nb: 'yes'\nc: \"no\"\nmode: 0644\nbig: 9223372036854775807\nhuge: 18446744073709551615\nf: 1.5\ns: \"0644\"\nlit: |\n  line one\n  line two\nz: ~\nflag: on\n";
        let out = round(text);
        assert!(out.contains("a: \"on\"\n"), "{out}");
        assert!(out.contains("mode: 420\n"), "{out}");
        assert!(out.contains("lit: |\n  line one\n  line two\n"), "{out}");
        let again = parse(&out).expect("parses again");
        assert_eq!(again, parse(text).unwrap());
        assert_eq!(again.get("mode"), Some(&Node::Int(420)));
        assert_eq!(again.get("a"), Some(&Node::from("on")));
        assert_eq!(again.get("flag"), Some(&Node::Bool(true)));
        assert_eq!(again.get("huge"), Some(&Node::UInt(u64::MAX)));
    }
}
