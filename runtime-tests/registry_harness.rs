//! Self-test of the registry harness (`support::registry`): images pushed
//! with skopeo keep their digests, and the auth proxy speaks Docker token
//! auth and redirects blobs when asked.

use crate::support::{
    self,
    registry::{layout_digest, sha256_digest, AuthProxy, Registry, MANIFEST_ACCEPT},
};
use std::io::Read;
use std::path::Path;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";

fn body(resp: ureq::Response) -> Vec<u8> {
    let mut data = Vec::new();
    resp.into_reader().read_to_end(&mut data).unwrap();
    data
}

/// A bearer token from PROXY's /token endpoint.
fn token(proxy: &AuthProxy, user: &str, password: &str) -> Result<String, u16> {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let url = format!(
        "{}/token?service=butte-test&scope=repository:library/busybox:pull",
        proxy.url()
    );
    match ureq::get(&url)
        .set("Authorization", &format!("Basic {basic}"))
        .call()
    {
        Ok(resp) => {
            let v: serde_json::Value = serde_json::from_slice(&body(resp)).unwrap();
            assert_eq!(v["token"], v["access_token"]);
            assert_eq!(v["expires_in"], 300);
            Ok(v["token"].as_str().unwrap().to_string())
        }
        Err(ureq::Error::Status(code, _)) => Err(code),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// The digests of the layers of TAG in the OCI layout OCI_DIR, and of its config.
fn layout_blobs(oci_dir: &Path, tag: &str) -> (Vec<String>, String) {
    let digest = layout_digest(oci_dir, tag);
    let path = oci_dir
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (
        layers,
        manifest["config"]["digest"].as_str().unwrap().to_string(),
    )
}

#[test]
fn registry_harness_serves_pushed_images_behind_token_auth() {
    if !support::enabled() {
        return;
    }
    let _serial = support::serial();
    let busybox = support::busybox_oci();
    let python = support::python_image();
    let registry = Registry::start();
    registry.push(&busybox, "1", "library/busybox:1");
    registry.push(&python, "3.11", "library/python:3.11");
    let images = [
        ("library/busybox", "1", layout_digest(&busybox, "1")),
        ("library/python", "3.11", layout_digest(&python, "3.11")),
    ];
    for (repo, tag, digest) in &images {
        assert_eq!(
            &registry.manifest_digest(repo, tag),
            digest,
            "{repo}:{tag} changed digest on push"
        );
    }
    let (python_layers, python_config) = layout_blobs(&python, "3.11");
    assert_eq!(python_layers.len(), 3);
    for blob in python_layers.iter().chain([&python_config]) {
        assert!(
            registry.blob_path(blob).is_file(),
            "{blob} not at {}",
            registry.blob_path(blob).display()
        );
    }

    // --- token auth ---------------------------------------------------------
    let proxy = AuthProxy::start(&registry.addr, USER, PASSWORD, false);
    let manifest_url = format!("{}/v2/library/busybox/manifests/1", proxy.url());
    match ureq::get(&manifest_url)
        .set("Accept", MANIFEST_ACCEPT)
        .call()
    {
        Err(ureq::Error::Status(401, resp)) => assert_eq!(
            resp.header("WWW-Authenticate").unwrap(),
            format!(
                r#"Bearer realm="{}/token",service="butte-test",scope="repository:library/busybox:pull""#,
                proxy.url()
            )
        ),
        other => panic!("unauthenticated manifest GET: {other:?}"),
    }
    match ureq::get(&format!("{}/v2/", proxy.url())).call() {
        Err(ureq::Error::Status(401, resp)) => assert_eq!(
            resp.header("WWW-Authenticate").unwrap(),
            format!(
                r#"Bearer realm="{}/token",service="butte-test""#,
                proxy.url()
            )
        ),
        other => panic!("unauthenticated /v2/: {other:?}"),
    }
    assert_eq!(token(&proxy, USER, "wrong"), Err(401));
    match ureq::get(&format!("{}/token", proxy.url())).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("token without credentials: {other:?}"),
    }
    let bearer = format!("Bearer {}", token(&proxy, USER, PASSWORD).unwrap());
    match ureq::get(&manifest_url)
        .set("Authorization", "Bearer not-a-token")
        .call()
    {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("manifest GET with a made-up token: {other:?}"),
    }

    // One agent: the requests below share keep-alive connections.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    for (repo, tag, digest) in &images {
        let url = format!("{}/v2/{repo}/manifests/{tag}", proxy.url());
        let resp = agent
            .get(&url)
            .set("Accept", MANIFEST_ACCEPT)
            .set("Authorization", &bearer)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("Docker-Content-Digest"), Some(digest.as_str()));
        assert_eq!(
            resp.header("Content-Type"),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        assert_eq!(&sha256_digest(&body(resp)), digest, "{repo}:{tag}");
        let head = agent
            .head(&url)
            .set("Accept", MANIFEST_ACCEPT)
            .set("Authorization", &bearer)
            .call()
            .unwrap();
        assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
    }
    // Blobs are streamed through, whole or by range.
    let config_url = format!("{}/v2/library/python/blobs/{python_config}", proxy.url());
    let config = body(
        agent
            .get(&config_url)
            .set("Authorization", &bearer)
            .call()
            .unwrap(),
    );
    assert_eq!(sha256_digest(&config), python_config);
    let part = agent
        .get(&config_url)
        .set("Authorization", &bearer)
        .set("Range", "bytes=0-9")
        .call()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(body(part), config[..10]);
    let layer_url = format!(
        "{}/v2/library/python/blobs/{}",
        proxy.url(),
        python_layers[0]
    );
    let layer = body(
        agent
            .get(&layer_url)
            .set("Authorization", &bearer)
            .call()
            .unwrap(),
    );
    assert_eq!(sha256_digest(&layer), python_layers[0]);
    assert_eq!(proxy.count("GET /token"), 3);
    assert_eq!(proxy.count("/blobs/"), 3);
    assert_eq!(proxy.count("HEAD /v2/"), 2);
    drop(proxy);

    // --- blob redirects -----------------------------------------------------
    let proxy = AuthProxy::start(&registry.addr, USER, PASSWORD, true);
    let bearer = format!("Bearer {}", token(&proxy, USER, PASSWORD).unwrap());
    let layer_url = format!(
        "{}/v2/library/python/blobs/{}",
        proxy.url(),
        python_layers[0]
    );
    let resp = agent
        .get(&layer_url)
        .set("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 307);
    assert_eq!(
        resp.header("Location"),
        Some(
            format!(
                "{}/v2/library/python/blobs/{}",
                registry.url(),
                python_layers[0]
            )
            .as_str()
        )
    );
    // Without the token the redirect is refused like any other request...
    match agent.get(&layer_url).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("unauthenticated blob GET: {other:?}"),
    }
    // ...and a client that follows it (ureq drops Authorization on the way)
    // gets the layer from the registry itself.
    let layer = body(
        ureq::get(&layer_url)
            .set("Authorization", &bearer)
            .call()
            .unwrap(),
    );
    assert_eq!(sha256_digest(&layer), python_layers[0]);
    // Manifests are still forwarded.
    let resp = agent
        .get(&format!("{}/v2/library/python/manifests/3.11", proxy.url()))
        .set("Accept", MANIFEST_ACCEPT)
        .set("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sha256_digest(&body(resp)), images[1].2);
    assert_eq!(proxy.count("/blobs/"), 3);

    // A real client (skopeo) gets through the token dance and the redirects.
    let copy = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--src-creds",
            &format!("{USER}:{PASSWORD}"),
        ])
        .arg(format!("docker://{}/library/busybox:1", proxy.addr))
        .arg(format!("oci:{}:1", copy.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy through the proxy: {}",
        support::text(&out.stderr)
    );
    assert_eq!(layout_digest(copy.path(), "1"), images[0].2);
    assert!(proxy.count("GET /token") >= 2, "{:?}", proxy.log());
    assert!(proxy.count("/blobs/") >= 5, "{:?}", proxy.log());
    assert!(
        !registry.log().contains("panic"),
        "registry log: {}",
        registry.log()
    );
}
