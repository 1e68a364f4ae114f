//! The pod-template edit: the wsguard native sidecar (an `initContainers`
//! entry with `restartPolicy: Always`), its configuration volume, the port
//! wiring, the app container's `preStop` drain hook, the grace period and
//! the status annotation. Every check runs before the first change.

use super::yaml::Node;
use super::{Options, Refusal, ANNOTATION_STATUS};

/// The sidecar's container name (and the prefix of what it adds).
pub const SIDECAR: &str = "wsguard";
/// The configuration volume added to the pod.
pub const VOLUME: &str = "wsguard-config";
/// Where the configuration volume is mounted; the image's default `--config`
/// is `CONFIG_DIR/wsguard.toml`.
pub const CONFIG_DIR: &str = "/etc/wsguard";
/// The name of the admin port on the sidecar.
pub const ADMIN_PORT_NAME: &str = "wsguard-admin";
/// The shortest grace period left to a pod: `drain.timeout` (25 s by
/// default) for the `preStop` drain, plus time for the app to stop.
pub const MIN_GRACE_SECONDS: i64 = 45;
/// The first port tried for the proxy when `--proxy-port` is not given.
pub const DEFAULT_PROXY_PORT: u16 = 8080;
/// The image's non-root user and group (distroless `nonroot`).
pub const NONROOT: i64 = 65532;

/// What an injection wired, for the Service checks.
#[derive(Debug, Clone)]
pub struct Wired {
    /// The app's port number (now reached only through wsguard).
    pub app_port: i64,
    /// The port's name, now wsguard's (`None`: the app's port had none).
    pub name: Option<String>,
    /// The pod template's labels.
    pub labels: Vec<(String, String)>,
}

/// The app's port chosen: container index, port index, number, name.
struct AppPort {
    container: usize,
    port: usize,
    number: i64,
    name: Option<String>,
}

/// Adds the sidecar to `template` (a node with `metadata` and `spec`).
pub fn inject(template: &mut Node, options: &Options) -> Result<Wired, Refusal> {
    let spec = template.get("spec").ok_or(Refusal::NoSpec)?;
    check_spec(spec)?;
    let app = find_app_port(spec, options.app_port.as_deref())?;
    let options = &Options {
        proxy_port: Some(proxy_port(spec, options)?),
        ..options.clone()
    };
    check_ports(spec, options, &app)?;
    let labels = labels(template);
    let spec = template.get_mut("spec").ok_or(Refusal::NoSpec)?;
    wire(spec, options, &app);
    annotate(template, options, &app);
    Ok(Wired {
        app_port: app.number,
        name: app.name,
        labels,
    })
}

/// Containers of a kind (`containers`, `initContainers`), empty if absent.
fn containers<'a>(spec: &'a Node, key: &str) -> &'a [Node] {
    spec.get(key).and_then(Node::as_seq).unwrap_or(&[])
}

/// hostNetwork, names and the volume already in use, the app's own hook.
fn check_spec(spec: &Node) -> Result<(), Refusal> {
    if spec.get("hostNetwork") == Some(&Node::Bool(true)) {
        return Err(Refusal::HostNetwork);
    }
    if containers(spec, "containers").is_empty() {
        return Err(Refusal::NoContainers);
    }
    let named = |c: &Node| c.get("name").and_then(Node::as_str) == Some(SIDECAR);
    if containers(spec, "containers").iter().any(named)
        || containers(spec, "initContainers").iter().any(named)
    {
        return Err(Refusal::NameTaken);
    }
    let volume = |v: &Node| v.get("name").and_then(Node::as_str) == Some(VOLUME);
    if containers(spec, "volumes").iter().any(volume) {
        return Err(Refusal::VolumeTaken);
    }
    Ok(())
}

/// The port to wire: the one named or numbered by `wanted`, else the
/// first TCP port of the first container that has one.
fn find_app_port(spec: &Node, wanted: Option<&str>) -> Result<AppPort, Refusal> {
    for (c, container) in containers(spec, "containers").iter().enumerate() {
        for (p, port) in containers(container, "ports").iter().enumerate() {
            let number = port.get("containerPort").and_then(Node::as_i64);
            let name = port.get("name").and_then(Node::as_str);
            let tcp = port
                .get("protocol")
                .is_none_or(|p| p.as_str() == Some("TCP"));
            let fits = match wanted {
                Some(w) => name == Some(w) || number.is_some_and(|n| n.to_string() == w),
                None => tcp,
            };
            if let (true, Some(number)) = (fits, number) {
                return Ok(AppPort {
                    container: c,
                    port: p,
                    number,
                    name: name.map(str::to_owned),
                });
            }
        }
    }
    Err(match wanted {
        Some(w) => Refusal::AppPortNotFound(w.to_owned()),
        None => Refusal::NoPort,
    })
}

/// Every `containerPort` of the pod's containers.
fn pod_ports(spec: &Node) -> impl Iterator<Item = &Node> {
    ["containers", "initContainers"]
        .into_iter()
        .flat_map(|key| containers(spec, key))
        .flat_map(|c| containers(c, "ports"))
}

/// `--proxy-port`, else the first of 8080..=8099 that no container uses
/// (and that is not the admin port).
fn proxy_port(spec: &Node, options: &Options) -> Result<u16, Refusal> {
    if let Some(port) = options.proxy_port {
        return Ok(port);
    }
    let used: Vec<i64> = pod_ports(spec)
        .filter_map(|p| p.get("containerPort").and_then(Node::as_i64))
        .collect();
    (DEFAULT_PROXY_PORT..DEFAULT_PROXY_PORT + 20)
        .find(|p| *p != options.admin_port && !used.contains(&i64::from(*p)))
        .ok_or(Refusal::PortInUse(DEFAULT_PROXY_PORT))
}

/// wsguard's ports are free in the pod, the renamed port name is valid,
/// and the app container has no `preStop` hook of its own.
fn check_ports(spec: &Node, options: &Options, app: &AppPort) -> Result<(), Refusal> {
    let proxy = options.proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
    for port in pod_ports(spec) {
        let number = port.get("containerPort").and_then(Node::as_i64);
        for ours in [proxy, options.admin_port] {
            if number == Some(i64::from(ours)) {
                return Err(Refusal::PortInUse(ours));
            }
        }
        if port.get("name").and_then(Node::as_str) == Some(ADMIN_PORT_NAME) {
            return Err(Refusal::PortNameTaken(ADMIN_PORT_NAME.to_owned()));
        }
    }
    if let Some(name) = &app.name {
        let renamed = format!("{name}-app");
        // IANA_SVC_NAME: at most 15 characters.
        if renamed.len() > 15 {
            return Err(Refusal::PortNameTooLong(renamed));
        }
    }
    let container = &containers(spec, "containers")[app.container];
    if container
        .get("lifecycle")
        .and_then(|l| l.get("preStop"))
        .is_some()
    {
        let name = container.get("name").and_then(Node::as_str).unwrap_or("");
        return Err(Refusal::PreStopTaken(name.to_owned()));
    }
    Ok(())
}

/// The template's labels (string values only).
fn labels(template: &Node) -> Vec<(String, String)> {
    match template.get("metadata").and_then(|m| m.get("labels")) {
        Some(Node::Map(entries)) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// The edits, once every check passed.
fn wire(spec: &mut Node, options: &Options, app: &AppPort) {
    if let Some(Node::Seq(list)) = spec.get_mut("containers") {
        if let Some(container) = list.get_mut(app.container) {
            if let Some(Node::Seq(ports)) = container.get_mut("ports") {
                if let (Some(port), Some(name)) = (ports.get_mut(app.port), &app.name) {
                    port.set("name", Node::from(format!("{name}-app")));
                }
            }
            drain_hook(container, options);
        }
    }
    if let Some(Node::Seq(list)) = spec.entry("initContainers", || Node::Seq(Vec::new())) {
        list.push(sidecar(options, app));
    }
    if let Some(Node::Seq(list)) = spec.entry("volumes", || Node::Seq(Vec::new())) {
        list.push(Node::map([
            ("name", Node::from(VOLUME)),
            (
                "configMap",
                Node::map([("name", Node::from(options.config_map.as_str()))]),
            ),
        ]));
    }
    let grace = spec
        .get("terminationGracePeriodSeconds")
        .and_then(Node::as_i64);
    if grace.is_none_or(|g| g < MIN_GRACE_SECONDS) {
        spec.set(
            "terminationGracePeriodSeconds",
            Node::Int(MIN_GRACE_SECONDS),
        );
    }
}

/// `lifecycle.preStop: httpGet /drain?wait=true` on wsguard's admin port:
/// a native sidecar gets SIGTERM only after the app container exited, so
/// the drain has to start from the app container's hook.
fn drain_hook(container: &mut Node, options: &Options) {
    let hook = Node::map([(
        "httpGet",
        Node::map([
            ("path", Node::from("/drain?wait=true")),
            ("port", Node::Int(i64::from(options.admin_port))),
        ]),
    )]);
    if let Some(lifecycle) = container.entry("lifecycle", || Node::Map(Vec::new())) {
        lifecycle.set("preStop", hook);
    }
}

/// The sidecar container.
fn sidecar(options: &Options, app: &AppPort) -> Node {
    let port = options.proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
    let mut proxy_port = vec![("containerPort", Node::Int(i64::from(port)))];
    if let Some(name) = &app.name {
        proxy_port.insert(0, ("name", Node::from(name.as_str())));
    }
    let proxy_port = Node::Map(
        proxy_port
            .into_iter()
            .map(|(k, v)| (Node::from(k), v))
            .collect(),
    );
    let args = [
        "run".to_owned(),
        "--config".to_owned(),
        format!("{CONFIG_DIR}/wsguard.toml"),
        "--listen".to_owned(),
        format!(
            "0.0.0.0:{}",
            options.proxy_port.unwrap_or(DEFAULT_PROXY_PORT)
        ),
        "--upstream-url".to_owned(),
        format!("ws://127.0.0.1:{}", app.number),
    ];
    Node::map([
        ("name", Node::from(SIDECAR)),
        ("image", Node::from(options.image.as_str())),
        (
            "args",
            Node::Seq(args.into_iter().map(Node::from).collect()),
        ),
        ("restartPolicy", Node::from("Always")),
        (
            "ports",
            Node::Seq(vec![
                proxy_port,
                Node::map([
                    ("name", Node::from(ADMIN_PORT_NAME)),
                    ("containerPort", Node::Int(i64::from(options.admin_port))),
                ]),
            ]),
        ),
        (
            "envFrom",
            Node::Seq(vec![Node::map([(
                "secretRef",
                Node::map([("name", Node::from(options.secret.as_str()))]),
            )])]),
        ),
        (
            "volumeMounts",
            Node::Seq(vec![Node::map([
                ("name", Node::from(VOLUME)),
                ("mountPath", Node::from(CONFIG_DIR)),
                ("readOnly", Node::Bool(true)),
            ])]),
        ),
        ("livenessProbe", probe("/healthz", 10)),
        ("readinessProbe", probe("/readyz", 5)),
        ("resources", resources()),
        ("securityContext", security_context()),
    ])
}

/// An HTTP probe on the admin port.
fn probe(path: &str, period: i64) -> Node {
    Node::map([
        (
            "httpGet",
            Node::map([
                ("path", Node::from(path)),
                ("port", Node::from(ADMIN_PORT_NAME)),
            ]),
        ),
        ("periodSeconds", Node::Int(period)),
    ])
}

/// Requests and limits from `docs/benchmarks.md` (see docs/operations.md,
/// "Sizing"): ≈ 15 MiB at rest plus 8.8 KiB per idle connection (≈ 21.5 KiB
/// over TLS); 100m CPU ≈ 3000 relayed messages/s at ≈ 30 µs each.
fn resources() -> Node {
    Node::map([
        (
            "requests",
            Node::map([("cpu", Node::from("100m")), ("memory", Node::from("32Mi"))]),
        ),
        ("limits", Node::map([("memory", Node::from("128Mi"))])),
    ])
}

/// Non-root, read-only root filesystem, no privilege escalation, no capability.
fn security_context() -> Node {
    Node::map([
        ("runAsNonRoot", Node::Bool(true)),
        ("runAsUser", Node::Int(NONROOT)),
        ("runAsGroup", Node::Int(NONROOT)),
        ("readOnlyRootFilesystem", Node::Bool(true)),
        ("allowPrivilegeEscalation", Node::Bool(false)),
        (
            "capabilities",
            Node::map([("drop", Node::Seq(vec![Node::from("ALL")]))]),
        ),
        (
            "seccompProfile",
            Node::map([("type", Node::from("RuntimeDefault"))]),
        ),
    ])
}

/// The status annotation: what was injected, by which version.
fn annotate(template: &mut Node, options: &Options, app: &AppPort) {
    let status = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "image": options.image,
        "configMap": options.config_map,
        "secret": options.secret,
        "appPort": app.number,
        "proxyPort": options.proxy_port,
        "adminPort": options.admin_port,
    });
    let Some(metadata) = template.entry("metadata", || Node::Map(Vec::new())) else {
        return;
    };
    if let Some(annotations) = metadata.entry("annotations", || Node::Map(Vec::new())) {
        annotations.set(ANNOTATION_STATUS, Node::from(status.to_string()));
    }
}
