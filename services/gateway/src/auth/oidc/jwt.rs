//! JSON Web Tokens signed by an OpenID provider: parsing, the signature check against the provider's keys (JWKS),
//! and the claims every token must pass. Pure: the keys and the clock are passed in.
//!
//! Only asymmetric algorithms are accepted. `none` and the HMAC family are refused before any key is looked at, so
//! a token cannot choose to be checked with a public key used as a shared secret.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A signature algorithm the gateway accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// Why a token is refused. The message says what was wrong, never the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a signed JWT (three base64url parts)")]
    Malformed,
    #[error("the token's signing algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token was issued by {found:?}, not by {expected:?}")]
    Issuer { found: String, expected: String },
    #[error("the token is for another audience ({0})")]
    Audience(String),
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no {0:?} claim")]
    MissingClaim(&'static str),
    #[error("the ID token's nonce is not the one this sign-in sent")]
    Nonce,
}

#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// A token split into its parts, its signature not yet checked.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    signing_input: &'a str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

/// Whether `token` has the shape of a JWS in compact form (so a bearer credential is a JWT, not an API token).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

impl<'a> Unverified<'a> {
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let raw: RawHeader =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        let alg = Alg::parse(&raw.alg).ok_or_else(|| TokenError::Algorithm(raw.alg.clone()))?;
        let signature = decode(signature)?;
        if signature.is_empty() {
            return Err(TokenError::Signature);
        }
        Ok(Self {
            alg,
            kid: raw.kid,
            signing_input: &token[..header.len() + 1 + payload.len()],
            signature,
            payload: decode(payload)?,
        })
    }

    /// The claims, once the signature verifies with `key`.
    pub fn verify(self, key: &Key) -> Result<Claims, TokenError> {
        key.verify(self.alg, self.signing_input.as_bytes(), &self.signature)?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&self.payload).map_err(|_| TokenError::Malformed)?;
        Ok(Claims(claims))
    }
}

/// A public key from the provider's JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The one algorithm the key is published for, if the provider says.
    pub alg: Option<Alg>,
    material: Material,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04, x, y).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

/// A provider's signing keys by `kid`; keys without a `kid` under the empty string. Keys the gateway cannot use
/// (encryption keys, symmetric keys, unknown types) are left out, so one odd key does not lose the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: HashMap<String, Key>,
}

impl KeySet {
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let raw: RawJwks =
            serde_json::from_slice(json).map_err(|e| format!("not a JWK set: {e}"))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
            .filter_map(|jwk| {
                let key = Key::from_jwk(&jwk)?;
                Some((jwk.kid.unwrap_or_default(), key))
            })
            .collect();
        Ok(Self { keys })
    }

    /// The key for a token's `kid`; a token without one may use the set's only key.
    pub fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.get(kid),
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        }
    }
}

impl Key {
    fn from_jwk(jwk: &RawJwk) -> Option<Self> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg = match &jwk.alg {
            Some(name) => Some(Alg::parse(name)?),
            None => None,
        };
        let bytes = |field: &Option<String>| URL_SAFE_NO_PAD.decode(field.as_ref()?).ok();
        let point = |x: Vec<u8>, y: Vec<u8>, size: usize| {
            (x.len() == size && y.len() == size).then(|| [&[4u8][..], &x, &y].concat())
        };
        let material = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => Material::Rsa {
                // Unsigned big-endian; some providers keep a leading zero byte, which the check does not want.
                n: bytes(&jwk.n)?.into_iter().skip_while(|b| *b == 0).collect(),
                e: bytes(&jwk.e)?,
            },
            ("EC", Some("P-256")) => Material::P256(point(bytes(&jwk.x)?, bytes(&jwk.y)?, 32)?),
            ("EC", Some("P-384")) => Material::P384(point(bytes(&jwk.x)?, bytes(&jwk.y)?, 48)?),
            ("OKP", Some("Ed25519")) => Material::Ed25519(bytes(&jwk.x)?),
            _ => return None,
        };
        Some(Self { alg, material })
    }

    /// Checks `signature` over `input` made with `alg`; the key must be of `alg`'s kind (and of `alg` itself, if
    /// the provider published it for one).
    pub fn verify(&self, alg: Alg, input: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        if self.alg.is_some_and(|published| published != alg) {
            return Err(TokenError::Algorithm(alg.name().to_owned()));
        }
        let mismatch = || Err(TokenError::Algorithm(alg.name().to_owned()));
        let verified = match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params: &signature::RsaParameters = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return mismatch(),
                };
                signature::RsaPublicKeyComponents { n, e }.verify(params, input, signature)
            }
            (Material::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, signature)
            }
            (Material::P384(point), Alg::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(input, signature)
            }
            (Material::Ed25519(key), Alg::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, key).verify(input, signature)
            }
            _ => return mismatch(),
        };
        verified.map_err(|_| TokenError::Signature)
    }
}

/// What a token checks against, besides its signature.
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// The token's `aud` must name at least one of these.
    pub audiences: &'a [String],
    /// Seconds since the Unix epoch.
    pub now: i64,
    /// Seconds of clock difference allowed with the provider.
    pub skew: i64,
}

/// A verified token's claims.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.as_str()
    }

    fn seconds(&self, name: &str) -> Option<i64> {
        let value = self.0.get(name)?;
        value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
    }

    /// The token's expiry, seconds since the Unix epoch.
    pub fn expiry(&self) -> Option<i64> {
        self.seconds("exp")
    }

    /// A claim holding one string or a list of them (`aud`, `groups`); anything else is none.
    pub fn strings(&self, name: &str) -> Vec<&str> {
        match self.0.get(name) {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Issuer, audience, expiry and not-before, as every token must pass them.
    pub fn check(&self, expect: &Expectations<'_>) -> Result<(), TokenError> {
        let issuer = self.str("iss").ok_or(TokenError::MissingClaim("iss"))?;
        if issuer != expect.issuer {
            return Err(TokenError::Issuer {
                found: issuer.to_owned(),
                expected: expect.issuer.to_owned(),
            });
        }
        let audiences = self.strings("aud");
        if audiences.is_empty() {
            return Err(TokenError::MissingClaim("aud"));
        }
        if !audiences
            .iter()
            .any(|aud| expect.audiences.iter().any(|ok| ok == aud))
        {
            return Err(TokenError::Audience(audiences.join(", ")));
        }
        let expiry = self.expiry().ok_or(TokenError::MissingClaim("exp"))?;
        if expect.now > expiry + expect.skew {
            return Err(TokenError::Expired);
        }
        if self
            .seconds("nbf")
            .is_some_and(|nbf| expect.now + expect.skew < nbf)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ring::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _},
    };
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-256 key pair and its JWK set (one key, `kid` "k1").
    fn es256() -> (EcdsaKeyPair, KeySet) {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("pair");
        let public = pair.public_key().as_ref();
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
             "x": b64(&public[1..33]), "y": b64(&public[33..])},
            {"kty": "oct", "kid": "shared", "k": b64(b"secret")},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        let set = KeySet::parse(jwks.to_string().as_bytes()).expect("jwks");
        (pair, set)
    }

    fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64(signature.as_ref()))
    }

    fn expect(now: i64) -> Expectations<'static> {
        static AUDIENCES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        Expectations {
            issuer: "https://id.example.com",
            audiences: AUDIENCES.get_or_init(|| vec!["store-platform".to_owned()]),
            now,
            skew: 60,
        }
    }

    fn check(token: &str, keys: &KeySet, now: i64) -> Result<Claims, TokenError> {
        let token = Unverified::parse(token)?;
        let key = keys
            .find(token.kid.as_deref())
            .ok_or(TokenError::UnknownKey)?;
        let claims = token.verify(key)?;
        claims.check(&expect(now))?;
        Ok(claims)
    }

    #[test]
    fn only_usable_signing_keys_are_kept() {
        let (_, set) = es256();
        assert_eq!(set.keys.len(), 1);
        assert!(set.find(Some("k1")).is_some() && set.find(Some("shared")).is_none());
        assert!(
            set.find(None).is_some(),
            "the only key serves a token without kid"
        );
    }

    #[test]
    fn a_signed_token_passes_and_each_broken_promise_is_named() {
        let (pair, keys) = es256();
        let header = json!({"alg": "ES256", "kid": "k1", "typ": "JWT"});
        let claims = |changes: Value| {
            let mut base = json!({"iss": "https://id.example.com", "aud": ["other", "store-platform"],
                                  "sub": "alice", "exp": 1_000, "nbf": 900});
            base.as_object_mut()
                .expect("object")
                .extend(changes.as_object().expect("object").clone());
            base
        };
        let good = sign(&pair, &header, &claims(json!({})));
        assert!(looks_like_jwt(&good));
        assert_eq!(
            check(&good, &keys, 950).expect("valid").str("sub"),
            Some("alice")
        );
        assert!(check(&good, &keys, 1_059).is_ok(), "within the clock skew");
        assert_eq!(check(&good, &keys, 1_061), Err(TokenError::Expired));
        assert_eq!(check(&good, &keys, 800), Err(TokenError::NotYetValid));

        let other_issuer = sign(&pair, &header, &claims(json!({"iss": "https://evil"})));
        assert!(matches!(
            check(&other_issuer, &keys, 950),
            Err(TokenError::Issuer { .. })
        ));
        let other_audience = sign(&pair, &header, &claims(json!({"aud": "someone-else"})));
        assert_eq!(
            check(&other_audience, &keys, 950),
            Err(TokenError::Audience("someone-else".into()))
        );
        let no_expiry = {
            let mut c = claims(json!({}));
            c.as_object_mut().expect("object").remove("exp");
            sign(&pair, &header, &c)
        };
        assert_eq!(
            check(&no_expiry, &keys, 950),
            Err(TokenError::MissingClaim("exp"))
        );

        // A changed claim breaks the signature.
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(claims(json!({"sub": "mallory"})).to_string().as_bytes());
        assert_eq!(
            check(&parts.join("."), &keys, 950),
            Err(TokenError::Signature)
        );

        let unknown_kid = sign(
            &pair,
            &json!({"alg": "ES256", "kid": "k2"}),
            &claims(json!({})),
        );
        assert_eq!(check(&unknown_kid, &keys, 950), Err(TokenError::UnknownKey));
    }

    #[test]
    fn none_hmac_and_a_key_of_another_kind_are_refused() {
        let (pair, keys) = es256();
        let body = b64(
            json!({"iss": "https://id.example.com", "aud": "store-platform", "exp": 2_000})
                .to_string()
                .as_bytes(),
        );
        let none = format!("{}.{body}.", b64(br#"{"alg":"none","kid":"k1"}"#));
        assert_eq!(
            check(&none, &keys, 950),
            Err(TokenError::Algorithm("none".into()))
        );
        // HS256 "signed" with the public key's bytes as the secret: refused by name, never tried.
        let hs = format!("{}.{body}.c2ln", b64(br#"{"alg":"HS256","kid":"k1"}"#));
        assert_eq!(
            check(&hs, &keys, 950),
            Err(TokenError::Algorithm("HS256".into()))
        );
        // A real ES256 signature presented as RS256, and as ES384, does not get past the key's algorithm.
        let good = sign(&pair, &json!({"alg": "ES256", "kid": "k1"}), &json!({}));
        let signature = good.rsplit('.').next().expect("signature");
        for alg in ["RS256", "ES384"] {
            let relabelled = format!(
                "{}.{body}.{signature}",
                b64(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#).as_bytes())
            );
            assert_eq!(
                check(&relabelled, &keys, 950),
                Err(TokenError::Algorithm(alg.into()))
            );
        }
        assert_eq!(check("not.a.jwt", &keys, 950), Err(TokenError::Malformed));
    }

    #[test]
    fn ed25519_keys_verify_eddsa() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let set = KeySet::parse(
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                             "x": b64(pair.public_key().as_ref())}]})
            .to_string()
            .as_bytes(),
        )
        .expect("jwks");
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","kid":"ed"}"#),
            b64(br#"{"iss":"https://id.example.com","aud":"store-platform","exp":2000}"#)
        );
        let token = format!("{input}.{}", b64(pair.sign(input.as_bytes()).as_ref()));
        assert!(check(&token, &set, 950).is_ok());
    }
}
