//! JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (`HS256`), as
//! libprocess makes and checks the Mesos agent's executor tokens: the
//! header `{"alg":"HS256","typ":"JWT"}`, a JSON object of claims, no expiry
//! unless the claims carry an `exp`.
//!
//! [`decode`] reads untrusted input and is strict: at most
//! [`MAX_TOKEN_BYTES`], exactly three parts, base64url without padding and
//! without stray bits, header and claims JSON objects without duplicate
//! keys, `alg` exactly `HS256` (`none` and every other algorithm refused),
//! no `crit`, a signature checked in constant time (the `hmac` crate's
//! `verify_slice`) before the claims are parsed. Error texts never repeat
//! the token's bytes, so they can go into a response header.
//!
//! The HMAC is the `hmac` crate over the `sha2` crate's SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The longest token read; a longer one is refused before any decoding.
/// (An executor token is about 250 bytes.)
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// How many random bytes a generated key holds (stored as hex text).
pub const GENERATED_KEY_BYTES: usize = 32;

/// The claims of a token: its payload object.
pub type Claims = BTreeMap<String, Value>;

/// The claims the Mesos agent puts in an executor's token (its executor
/// principal) and checks on every executor API call.
pub mod executor_claims {
    use super::Claims;
    use serde_json::Value;

    /// The framework id.
    pub const FRAMEWORK_ID: &str = "fid";
    /// The executor id.
    pub const EXECUTOR_ID: &str = "eid";
    /// The executor's container id.
    pub const CONTAINER_ID: &str = "cid";

    /// The claims naming one executor container.
    pub fn claims(framework_id: &str, executor_id: &str, container_id: &str) -> Claims {
        [
            (FRAMEWORK_ID, framework_id),
            (EXECUTOR_ID, executor_id),
            (CONTAINER_ID, container_id),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
    }
}

/// Why a token was refused, or a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("token is {len} bytes, more than the {MAX_TOKEN_BYTES} allowed")]
    TooLong { len: usize },
    #[error("expected 3 components in token, got {found}")]
    Components { found: usize },
    #[error("token {part} is not unpadded base64url")]
    Base64 { part: &'static str },
    #[error("token {part} is not a JSON object")]
    Json {
        part: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("token header has no 'alg'")]
    NoAlg,
    #[error("token 'alg' is not a string")]
    AlgNotString,
    #[error("unsecured token ('alg' none) refused, expected \"HS256\"")]
    AlgNone,
    #[error("unsupported token 'alg', expected \"HS256\"")]
    Alg,
    #[error("token 'typ' is not a string")]
    TypNotString,
    #[error("token 'crit' field is unsupported")]
    Crit,
    #[error("token signature does not match")]
    Signature,
    #[error("token 'exp' field is not a number")]
    ExpNotNumber,
    #[error("token has expired: exp({exp}) < now({now})")]
    Expired { exp: i64, now: i64 },
    #[error("secret key {path} is empty")]
    KeyEmpty { path: PathBuf },
    #[error("read secret key {path}: {source}")]
    KeyRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write secret key {path}: {source}")]
    KeyWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("generate a secret key: {0}")]
    Random(#[source] io::Error),
}

/// An HMAC key. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Key {
    /// A key of these bytes (the whole content of a key file, as Mesos
    /// reads `--jwt_secret_key`). `None` when empty.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Key> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then_some(Key(bytes))
    }

    /// A new key: [`GENERATED_KEY_BYTES`] bytes of the kernel's random
    /// generator, as hex text (so the file can be handed to another agent).
    pub fn generate() -> Result<Key, JwtError> {
        let mut random = [0u8; GENERATED_KEY_BYTES];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(JwtError::Random)?;
        Ok(Key(hex::encode(random).into_bytes()))
    }

    /// Reads a key file; an empty one is an error naming it.
    pub fn load(path: &Path) -> Result<Key, JwtError> {
        let bytes = fs::read(path).map_err(|source| JwtError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        Key::new(bytes).ok_or_else(|| JwtError::KeyEmpty {
            path: path.to_path_buf(),
        })
    }

    /// Reads the key at `path`, or when there is none generates one and
    /// writes it there (mode 0600: a temporary file, fsync, rename, fsync
    /// of the directory). Returns the key and whether it is new.
    pub fn load_or_create(path: &Path) -> Result<(Key, bool), JwtError> {
        match Key::load(path) {
            Err(JwtError::KeyRead { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other.map(|k| (k, false)),
        }
        let key = Key::generate()?;
        crate::support::atomic_write_private(path, &key.0).map_err(|source| {
            JwtError::KeyWrite {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok((key, true))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac accepts every key length")
    }
}

/// The header of every token made here, as libprocess writes it.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Makes a token carrying `claims`, signed with `key`.
pub fn encode(claims: &Claims, key: &Key) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks `token` against `key` and returns its claims (an `exp` claim is
/// checked against the system clock).
pub fn decode(token: &str, key: &Key) -> Result<Claims, JwtError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    decode_at(token, key, now)
}

/// [`decode`] at `now` (seconds since the epoch).
pub fn decode_at(token: &str, key: &Key, now: i64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong { len: token.len() });
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(JwtError::Components { found: parts.len() });
    };
    check_header(&object("header", header)?)?;
    let signature = base64url("signature", signature)?;
    let mut mac = key.mac();
    mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
    // Constant time in the signature's content.
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;
    let claims = object("payload", payload)?;
    match claims.get("exp") {
        None => {}
        Some(exp) => {
            let exp = exp
                .as_i64()
                .or_else(|| exp.as_f64().map(|f| f as i64))
                .ok_or(JwtError::ExpNotNumber)?;
            if exp < now {
                return Err(JwtError::Expired { exp, now });
            }
        }
    }
    Ok(claims)
}

fn check_header(header: &Claims) -> Result<(), JwtError> {
    if header.get("typ").is_some_and(|t| !t.is_string()) {
        return Err(JwtError::TypNotString);
    }
    match header.get("alg") {
        None => return Err(JwtError::NoAlg),
        Some(Value::String(a)) if a == "HS256" => {}
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => return Err(JwtError::AlgNone),
        Some(Value::String(_)) => return Err(JwtError::Alg),
        Some(_) => return Err(JwtError::AlgNotString),
    }
    // 'crit' names extensions that must be understood; none are.
    if header.contains_key("crit") {
        return Err(JwtError::Crit);
    }
    Ok(())
}

/// Strict base64url: the URL-safe alphabet, no padding, no whitespace, no
/// non-zero trailing bits.
fn base64url(part: &'static str, text: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwtError::Base64 { part })
}

/// One part as a JSON object whose keys are distinct.
fn object(part: &'static str, text: &str) -> Result<Claims, JwtError> {
    let bytes = base64url(part, text)?;
    serde_json::from_slice::<StrictObject>(&bytes)
        .map(|o| o.0)
        .map_err(|source| JwtError::Json { part, source })
}

/// A JSON object that refuses a repeated key (serde_json keeps the last
/// one silently, so two readers could see different claims).
struct StrictObject(Claims);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut out = Claims::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                    out.insert(k, v);
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Key {
        Key::new(b"a secret key of the agent".to_vec()).unwrap()
    }

    fn claims() -> Claims {
        executor_claims::claims("F1", "E1", "C1")
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// A token of these raw header and payload texts, signed with `key`.
    fn forge(header: &str, payload: &str, key: &Key) -> String {
        let signed = format!("{}.{}", b64(header), b64(payload));
        let mut mac = key.mac();
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn refused(token: &str) -> String {
        decode_at(token, &key(), 1_000).unwrap_err().to_string()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test cases 1 and 2 of RFC 4231.
        let mut mac = Key::new(vec![0x0b; 20]).unwrap().mac();
        mac.update(b"Hi There");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let mut mac = Key::new(b"Jefe".to_vec()).unwrap().mac();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn matches_a_token_made_by_another_implementation() {
        // RFC 7515 appendix A.1: an HS256 JWS with a JWK `k`.
        let k = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                     dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let claims = decode_at(token, &Key::new(k.clone()).unwrap(), 1_300_000_000).unwrap();
        assert_eq!(claims["iss"], json!("joe"));
        assert_eq!(claims["http://example.com/is_root"], json!(true));
        // ...and its exp (1300819380) has passed since.
        let e = decode_at(token, &Key::new(k).unwrap(), 1_300_819_381).unwrap_err();
        assert!(
            matches!(
                e,
                JwtError::Expired {
                    exp: 1300819380,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn signs_and_verifies() {
        let token = encode(&claims(), &key());
        assert_eq!(token.split('.').count(), 3);
        assert!(token.starts_with(&b64(HEADER)));
        assert_eq!(decode(&token, &key()).unwrap(), claims());
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"cid":"C1","eid":"E1","fid":"F1"}"#
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let token = encode(&claims(), &Key::new(b"another key".to_vec()).unwrap());
        assert_eq!(refused(&token), "token signature does not match");
    }

    #[test]
    fn tampering_is_refused() {
        let token = encode(&claims(), &key());
        let parts: Vec<&str> = token.split('.').collect();
        // Other claims under the original signature.
        let other = b64(r#"{"cid":"C1","eid":"E2","fid":"F1"}"#);
        let t = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(refused(&t), "token signature does not match");
        // A flipped bit in the signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[31] ^= 1;
        let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(refused(&t), "token signature does not match");
        // A truncated signature.
        let t = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(&sig[..16])
        );
        assert_eq!(refused(&t), "token signature does not match");
        // No signature at all.
        let t = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(refused(&t), "token signature does not match");
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let payload = r#"{"fid":"F1"}"#;
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(payload));
        assert!(refused(&none).contains("unsecured token"));
        let none = forge(r#"{"alg":"None","typ":"JWT"}"#, payload, &key());
        assert!(refused(&none).contains("unsecured token"));
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
        ] {
            assert_eq!(
                refused(&forge(header, payload, &key())),
                "unsupported token 'alg', expected \"HS256\""
            );
        }
        assert_eq!(
            refused(&forge(r#"{"typ":"JWT"}"#, payload, &key())),
            "token header has no 'alg'"
        );
        assert_eq!(
            refused(&forge(r#"{"alg":256}"#, payload, &key())),
            "token 'alg' is not a string"
        );
        assert_eq!(
            refused(&forge(r#"{"alg":"HS256","crit":["exp"]}"#, payload, &key())),
            "token 'crit' field is unsupported"
        );
        assert_eq!(
            refused(&forge(r#"{"alg":"HS256","typ":1}"#, payload, &key())),
            "token 'typ' is not a string"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = encode(&claims(), &key());
        let parts: Vec<&str> = good.split('.').collect();
        assert_eq!(refused(""), "expected 3 components in token, got 1");
        assert_eq!(refused("a.b"), "expected 3 components in token, got 2");
        assert_eq!(
            refused(&format!("{good}.x")),
            "expected 3 components in token, got 4"
        );
        assert_eq!(
            refused(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            format!(
                "token is {} bytes, more than the 8192 allowed",
                MAX_TOKEN_BYTES + 1
            )
        );
        // Padding, the standard alphabet, whitespace, stray bits.
        let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
        assert_eq!(refused(&padded), "token header is not unpadded base64url");
        let std_alphabet = format!("{}.{}.{}", parts[0], parts[1], parts[2].replace('-', "+"));
        if std_alphabet != good {
            assert_eq!(
                refused(&std_alphabet),
                "token signature is not unpadded base64url"
            );
        }
        let space = format!("{} .{}.{}", parts[0], parts[1], parts[2]);
        assert_eq!(refused(&space), "token header is not unpadded base64url");
        // "eyJ" + one char whose low bits are not zero.
        assert_eq!(
            refused(&format!("e3.{}.{}", parts[1], parts[2])),
            "token header is not unpadded base64url"
        );
        // Header and payload must be JSON objects, once each key.
        for (header, payload, want) in [
            (
                "[1]",
                r#"{"fid":"F1"}"#,
                "token header is not a JSON object",
            ),
            (
                "{\"alg\":\"HS256\"",
                "{}",
                "token header is not a JSON object",
            ),
            (HEADER, "\"fid\"", "token payload is not a JSON object"),
            (
                HEADER,
                r#"{"fid":"F1"} x"#,
                "token payload is not a JSON object",
            ),
            (
                HEADER,
                r#"{"fid":"F1","fid":"F2"}"#,
                "token payload is not a JSON object",
            ),
            (
                r#"{"alg":"none","alg":"HS256"}"#,
                "{}",
                "token header is not a JSON object",
            ),
        ] {
            assert_eq!(
                refused(&forge(header, payload, &key())),
                want,
                "{header} {payload}"
            );
        }
        let not_utf8 = format!("{}.{}.", b64(HEADER), URL_SAFE_NO_PAD.encode([0xff, 0xfe]));
        assert_eq!(refused(&not_utf8), "token signature does not match");
    }

    #[test]
    fn the_payload_is_parsed_only_under_a_good_signature() {
        // Garbage claims with a wrong signature: the signature is named.
        let t = format!("{}.{}.{}", b64(HEADER), b64("not json"), b64("sig"));
        assert_eq!(refused(&t), "token signature does not match");
    }

    #[test]
    fn expiry_is_checked_when_present() {
        let mut c = claims();
        c.insert("exp".into(), json!(2_000));
        let t = encode(&c, &key());
        assert!(decode_at(&t, &key(), 1_999).is_ok());
        assert_eq!(
            decode_at(&t, &key(), 2_001).unwrap_err().to_string(),
            "token has expired: exp(2000) < now(2001)"
        );
        c.insert("exp".into(), json!("soon"));
        assert_eq!(
            refused(&encode(&c, &key())),
            "token 'exp' field is not a number"
        );
    }

    #[test]
    fn errors_do_not_repeat_the_token() {
        let evil = forge(r#"{"alg":"X\"\r\nSet-Cookie: a"}"#, "{}", &key());
        let e = refused(&evil);
        assert!(!e.contains('\n') && !e.contains("Set-Cookie"), "{e}");
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("executor_secret_key");
        let (k1, created) = Key::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(k1.0.len(), 2 * GENERATED_KEY_BYTES);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let (k2, created) = Key::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1, k2);
        assert_eq!(Key::load(&path).unwrap(), k1);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        assert_eq!(format!("{k1:?}"), "Key(64 bytes)");

        let empty = dir.path().join("empty");
        fs::write(&empty, b"").unwrap();
        assert_eq!(
            Key::load(&empty).unwrap_err().to_string(),
            format!("secret key {} is empty", empty.display())
        );
        assert!(Key::load_or_create(&empty).is_err());
        let missing = dir.path().join("missing");
        assert!(Key::load(&missing)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("read secret key {}: ", missing.display())));
        let nowhere = dir.path().join("no/such/dir/key");
        assert!(Key::load_or_create(&nowhere)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("write secret key {}: ", nowhere.display())));
    }
}
