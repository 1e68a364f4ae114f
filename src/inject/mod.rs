//! `wsguard inject`: adds the wsguard native sidecar to every pod template
//! of Kubernetes YAML (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//! CronJob, Pod; `List` items too). Other documents pass through with their
//! keys in order (round-tripped by [`yaml`], not re-templated); comments are
//! not kept. A document that cannot be injected is left out of the output
//! and reported, never written in part.

pub mod pod;
pub mod yaml;

use pod::Wired;
use yaml::Node;

/// Marks a pod template as injected (JSON: what, by which version).
pub const ANNOTATION_STATUS: &str = "wsguard.io/status";
/// `enabled` / `disabled`: opt in (with `--annotated-only`) or out.
pub const ANNOTATION_INJECT: &str = "wsguard.io/inject";
/// Per-workload `--app-port`.
pub const ANNOTATION_APP_PORT: &str = "wsguard.io/app-port";
/// Per-workload `--config-map`.
pub const ANNOTATION_CONFIG_MAP: &str = "wsguard.io/config-map";
/// Per-workload `--image`.
pub const ANNOTATION_IMAGE: &str = "wsguard.io/image";
/// Per-workload `--proxy-port`.
pub const ANNOTATION_PROXY_PORT: &str = "wsguard.io/proxy-port";
/// Per-workload `--secret`.
pub const ANNOTATION_SECRET: &str = "wsguard.io/secret";

/// What to inject.
#[derive(Debug, Clone)]
pub struct Options {
    /// The ConfigMap holding `wsguard.toml`.
    pub config_map: String,
    /// The Secret whose keys become the sidecar's environment (HMAC secret, admin token).
    pub secret: String,
    /// The sidecar's image.
    pub image: String,
    /// The app's port (number or name); `None`: the first TCP port of the first container with one.
    pub app_port: Option<String>,
    /// wsguard's own port; `None`: the first of 8080..=8099 the pod leaves free.
    pub proxy_port: Option<u16>,
    /// wsguard's admin port (`admin.bind` in the ConfigMap's TOML).
    pub admin_port: u16,
    /// Inject only pod templates annotated `wsguard.io/inject: "enabled"`.
    pub annotated_only: bool,
}

/// Why a pod template was not injected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The document does not parse.
    #[error("malformed YAML: {0}")]
    Malformed(String),
    /// No `spec` where the pod template should be.
    #[error("no pod template spec")]
    NoSpec,
    /// `spec.containers` is missing or empty.
    #[error("the pod template has no containers")]
    NoContainers,
    /// `hostNetwork: true`.
    #[error("hostNetwork pods share the node's ports: the sidecar cannot sit in front of the app")]
    HostNetwork,
    /// A container named `wsguard` is there already (without the status annotation).
    #[error("a container is already named \"wsguard\"")]
    NameTaken,
    /// A volume named `wsguard-config` is there already.
    #[error("a volume is already named \"wsguard-config\"")]
    VolumeTaken,
    /// No container declares a TCP port.
    #[error("no container port to wire (declare the app's port, or set --app-port / wsguard.io/app-port)")]
    NoPort,
    /// `--app-port` names no port of the pod.
    #[error("no container port is named or numbered {0:?} (--app-port / wsguard.io/app-port)")]
    AppPortNotFound(String),
    /// wsguard's own port (or the admin port) is used by a container.
    #[error("port {0} is used by a container: set --proxy-port / wsguard.io/proxy-port (the admin port is admin.bind's)")]
    PortInUse(u16),
    /// A port is already named as wsguard's admin port.
    #[error("a container port is already named {0:?}")]
    PortNameTaken(String),
    /// `<name>-app` is longer than a port name may be (15 characters).
    #[error("the app's port would be renamed {0:?}, longer than 15 characters: shorten its name")]
    PortNameTooLong(String),
    /// The app container has a `preStop` hook of its own.
    #[error("container {0:?} has a preStop hook already (the drain hook goes there)")]
    PreStopTaken(String),
    /// An annotation's value is not usable.
    #[error("annotation {0}: {1:?} is not {2}")]
    BadAnnotation(&'static str, String, &'static str),
}

/// What `inject` did.
#[derive(Debug, Default)]
pub struct Report {
    /// The documents written, `---`-separated.
    pub output: String,
    /// Warnings (the output is still right, but look at it).
    pub warnings: Vec<String>,
    /// Documents left out, each `Kind "name": why`.
    pub errors: Vec<String>,
    /// Pod templates injected.
    pub injected: usize,
}

/// The kinds whose pod template is edited, with the path to it.
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&["spec", "template"])
        }
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// `Kind "name"` of a document, for messages (values escaped).
fn describe(doc: &Node) -> String {
    let kind = doc.str_at(&["kind"]).unwrap_or("document").escape_debug();
    match doc.str_at(&["metadata", "name"]) {
        Some(name) => format!("{kind} {name:?}"),
        None => kind.to_string(),
    }
}

/// Splits a YAML stream at its `---` (and `...`) lines: each document's
/// text with the input's line number its text starts on.
pub fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare == "..." || line.starts_with("--- ") {
            let rest = line.strip_prefix("--- ").unwrap_or("");
            docs.push((n + 1, rest.to_owned()));
        } else if let Some((_, last)) = docs.last_mut() {
            last.push_str(line);
        }
    }
    docs
}

/// Injects every pod template of `input`.
pub fn inject(input: &str, options: &Options) -> Report {
    let mut report = Report::default();
    let mut written = Vec::new();
    let mut wired = Vec::new();
    for (i, (line, text)) in documents(input).iter().enumerate() {
        let doc = match yaml::parse(text) {
            Ok(Node::Null) => continue,
            Ok(doc) => doc,
            Err(e) => {
                let first = e.lines().next().unwrap_or("");
                let why = Refusal::Malformed(first.trim_start_matches("error: ").to_owned());
                let at = format!("document {} (from line {line})", i + 1);
                report.errors.push(format!("{at}: {why}"));
                continue;
            }
        };
        let mut copy = doc.clone();
        match edit(&mut copy, options, &mut wired) {
            Ok(()) => written.push(copy),
            Err(e) => report.errors.push(e),
        }
    }
    for doc in &written {
        check_service(doc, &wired, &mut report.warnings);
    }
    report.injected = wired.len();
    for doc in &written {
        match yaml::emit(doc) {
            Ok(text) => {
                report.output.push_str("---\n");
                report.output.push_str(&text);
            }
            Err(e) => report
                .errors
                .push(format!("{}: cannot write: {e}", describe(doc))),
        }
    }
    report
}

/// One document: a `List`'s items, a workload's pod template, or nothing.
fn edit(doc: &mut Node, options: &Options, wired: &mut Vec<Wired>) -> Result<(), String> {
    let kind = doc.str_at(&["kind"]).unwrap_or("").to_owned();
    if kind.ends_with("List") {
        let what = describe(doc);
        if let Some(Node::Seq(items)) = doc.get_mut("items") {
            for (i, item) in items.iter_mut().enumerate() {
                edit(item, options, wired).map_err(|e| format!("{what} item {}: {e}", i + 1))?;
            }
        }
        return Ok(());
    }
    let Some(path) = template_path(&kind) else {
        return Ok(());
    };
    let what = describe(doc);
    let Some(template) = path
        .iter()
        .try_fold(&mut *doc, |node, key| node.get_mut(key))
    else {
        return Err(format!("{what}: {}", Refusal::NoSpec));
    };
    let result = match resolve(template, options) {
        Ok(Some(options)) => pod::inject(template, &options).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match result {
        Ok(Some(w)) => {
            wired.push(w);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// The options for one pod template (its annotations override them), or
/// `None` when it is skipped: injected already, `disabled`, or not `enabled`
/// with `--annotated-only`.
fn resolve(template: &Node, options: &Options) -> Result<Option<Options>, Refusal> {
    let annotation = |key: &str| template.str_at(&["metadata", "annotations", key]);
    if annotation(ANNOTATION_STATUS).is_some() {
        return Ok(None);
    }
    match annotation(ANNOTATION_INJECT) {
        Some("disabled") => return Ok(None),
        Some("enabled") => {}
        Some(other) => {
            let expected = "\"enabled\" or \"disabled\"";
            return Err(Refusal::BadAnnotation(
                ANNOTATION_INJECT,
                other.to_owned(),
                expected,
            ));
        }
        None if options.annotated_only => return Ok(None),
        None => {}
    }
    let mut options = options.clone();
    if let Some(port) = annotation(ANNOTATION_APP_PORT) {
        options.app_port = Some(port.to_owned());
    }
    if let Some(name) = annotation(ANNOTATION_CONFIG_MAP) {
        options.config_map = name.to_owned();
    }
    if let Some(name) = annotation(ANNOTATION_SECRET) {
        options.secret = name.to_owned();
    }
    if let Some(image) = annotation(ANNOTATION_IMAGE) {
        options.image = image.to_owned();
    }
    if let Some(port) = annotation(ANNOTATION_PROXY_PORT) {
        let parsed = port.parse().ok().filter(|p| *p != 0);
        let bad = || {
            Refusal::BadAnnotation(
                ANNOTATION_PROXY_PORT,
                port.to_owned(),
                "a port (1 to 65535)",
            )
        };
        options.proxy_port = Some(parsed.ok_or_else(bad)?);
    }
    Ok(Some(options))
}

/// Warns about a Service whose selector picks an injected pod and that
/// targets the app's port by number: it reaches the app, not wsguard.
fn check_service(doc: &Node, wired: &[Wired], warnings: &mut Vec<String>) {
    if doc.str_at(&["kind"]).is_some_and(|k| k.ends_with("List")) {
        for item in doc.get("items").and_then(Node::as_seq).unwrap_or(&[]) {
            check_service(item, wired, warnings);
        }
        return;
    }
    if doc.str_at(&["kind"]) != Some("Service") {
        return;
    }
    let Some(Node::Map(selector)) = doc.get("spec").and_then(|s| s.get("selector")) else {
        return;
    };
    let picks = |w: &&Wired| {
        selector.iter().all(|(k, v)| {
            w.labels
                .iter()
                .any(|(lk, lv)| k.as_str() == Some(lk) && v.as_str() == Some(lv))
        })
    };
    let ports = doc
        .get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Node::as_seq);
    for port in ports.unwrap_or(&[]) {
        let target = port.get("targetPort").or_else(|| port.get("port"));
        let Some(number) = target.and_then(Node::as_i64) else {
            continue;
        };
        for w in wired.iter().filter(picks).filter(|w| w.app_port == number) {
            let hint = match &w.name {
                Some(name) => format!("use targetPort: {name} (wsguard's port now)"),
                None => "name the app's port and target it by name".to_owned(),
            };
            warnings.push(format!(
                "{}: targetPort {number} is the app's port: it bypasses wsguard (and the app listens on localhost only); {hint}",
                describe(doc)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_markers_only_at_the_line_start() {
        let text = "a: 1\n---\nb: |\n  ---\n  x\n--- c: 3\n...\n";
        let docs = documents(text);
        assert_eq!(
            docs,
            vec![
                (1, "a: 1\n".to_owned()),
                (2, "b: |\n  ---\n  x\n".to_owned()),
                (6, "c: 3\n".to_owned()),
                (7, String::new()),
            ]
        );
    }
}
