//! Keys, key ids, signatures and hashes. Verification supports `ed25519`,
//! `ecdsa`/`ecdsa-sha2-nistp256` (`ecdsa-sha2-nistp256` scheme) and `rsa` (`rsassa-pss-sha256`);
//! the repository engine signs with ed25519 or ECDSA P-256 keys.

use std::collections::{BTreeMap, BTreeSet};

use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spki::der::Decode;

use crate::canonical;
use crate::error::{Error, Result};
use crate::metadata::{Key, KeyVal, Signature};

/// The key id of a key: hex SHA-256 of the canonical JSON of the key object (all its fields).
pub fn key_id(key: &Key) -> Result<String> {
    let v = serde_json::to_value(key).map_err(|e| Error::Key(e.to_string()))?;
    hash_canonical(&v)
}

/// The key id over the key's core fields only (`keytype`, `scheme`, `keyval`), as
/// securesystemslib computes it when a key is created.
pub fn core_key_id(key: &Key) -> Result<String> {
    let keyval = serde_json::to_value(&key.keyval).map_err(|e| Error::Key(e.to_string()))?;
    hash_canonical(
        &serde_json::json!({"keytype": key.keytype, "scheme": key.scheme, "keyval": keyval}),
    )
}

fn hash_canonical(v: &Value) -> Result<String> {
    let bytes = canonical::encode(v).map_err(|e| Error::Key(e.to_string()))?;
    Ok(hex::encode(digest::digest(&digest::SHA256, &bytes)))
}

/// Check that every key in a key map is listed under its own key id: the SHA-256 of the canonical
/// key object as published, or of its core fields (metadata tools add fields such as
/// `keyid_hash_algorithms` or `x-…` annotations after computing the id).
pub(crate) fn check_key_ids(role: &str, keys: &BTreeMap<String, Key>) -> Result<()> {
    for (id, key) in keys {
        let full = key_id(key)?;
        if &full != id && &core_key_id(key)? != id {
            return Err(Error::malformed(
                role,
                format!("key listed as {id} has key id {full} (key ids are the SHA-256 of the canonical key)"),
            ));
        }
    }
    Ok(())
}

/// A decoded public key: the algorithm and the key material it verifies with. Two keys are the
/// same key exactly when their `Verifier`s are equal, whatever their JSON spelling (hex case, PEM
/// line breaks, SPKI or raw point, extra fields) and their key ids.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Verifier {
    Ed25519(Vec<u8>),
    EcdsaP256(Vec<u8>),
    RsaPss(Vec<u8>),
}

const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

fn spki_der(public: &str) -> Result<Vec<u8>> {
    let trimmed = public.trim();
    if trimmed.starts_with("-----BEGIN") {
        let (label, der) = spki::der::pem::decode_vec(trimmed.as_bytes())
            .map_err(|e| Error::Key(format!("PEM: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(Error::Key(format!("PEM label {label:?} is not PUBLIC KEY")));
        }
        Ok(der)
    } else {
        hex::decode(trimmed).map_err(|_| Error::Key("public key is neither PEM nor hex".into()))
    }
}

fn subject_key(der: &[u8], oid: &str) -> Result<Vec<u8>> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| Error::Key(format!("SPKI: {e}")))?;
    if info.algorithm.oid.to_string() != oid {
        return Err(Error::Key(format!(
            "SPKI algorithm {} is not {oid}",
            info.algorithm.oid
        )));
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::Key("SPKI bit string has unused bits".into()))
}

impl Verifier {
    fn from_key(key: &Key) -> Result<Self> {
        match (key.keytype.as_str(), key.scheme.as_str()) {
            ("ed25519", "ed25519") => {
                let raw = hex::decode(&key.keyval.public)
                    .map_err(|_| Error::Key("ed25519 public key is not hex".into()))?;
                if raw.len() != 32 {
                    return Err(Error::Key("ed25519 public key is not 32 bytes".into()));
                }
                Ok(Verifier::Ed25519(raw))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                let der = spki_der(&key.keyval.public)?;
                let point = if der.len() == 65 && der[0] == 4 {
                    der
                } else {
                    subject_key(&der, OID_EC_PUBLIC_KEY)?
                };
                Ok(Verifier::EcdsaP256(point))
            }
            ("rsa", "rsassa-pss-sha256") => {
                let der = spki_der(&key.keyval.public)?;
                Ok(Verifier::RsaPss(subject_key(&der, OID_RSA_ENCRYPTION)?))
            }
            (t, s) => Err(Error::Key(format!(
                "unsupported key type {t:?} with scheme {s:?}"
            ))),
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let (alg, public): (&dyn signature::VerificationAlgorithm, &[u8]) = match self {
            Verifier::Ed25519(p) => (&signature::ED25519, p),
            Verifier::EcdsaP256(p) => (&signature::ECDSA_P256_SHA256_ASN1, p),
            Verifier::RsaPss(p) => (&signature::RSA_PSS_2048_8192_SHA256, p),
        };
        UnparsedPublicKey::new(alg, public).verify(msg, sig).is_ok()
    }
}

/// The bytes a signature may cover: the signed object's text as it appears in the file, and
/// (computed only if needed) its canonical form. TUF signs the canonical form; a file written in
/// canonical form (as Updraft's engine writes them) verifies over its own bytes with no
/// re-encoding. Bytes that a key signed are a canonical encoding of an object, so parsing them
/// yields the very object that was signed.
pub(crate) struct SignedMessage<'a> {
    raw: &'a [u8],
    canonical: std::cell::OnceCell<Option<Vec<u8>>>,
}

impl<'a> SignedMessage<'a> {
    pub(crate) fn new(raw: &'a str) -> Self {
        SignedMessage {
            raw: raw.as_bytes(),
            canonical: std::cell::OnceCell::new(),
        }
    }

    fn canonical(&self) -> Option<&[u8]> {
        self.canonical
            .get_or_init(|| {
                let v: Value = serde_json::from_slice(self.raw).ok()?;
                let c = canonical::encode(&v).ok()?;
                (c != self.raw).then_some(c)
            })
            .as_deref()
    }

    fn verified_by(&self, verifier: &Verifier, sig: &[u8]) -> bool {
        verifier.verify(self.raw, sig) || self.canonical().is_some_and(|c| verifier.verify(c, sig))
    }
}

/// Verify that the signed object carries valid signatures from at least `threshold` distinct keys
/// of `keyids`.
///
/// Distinct keys are distinct key *material*: each key is decoded (ed25519 bytes, the P-256 point,
/// the RSA public key) and a key listed under several ids or spelled several ways (hex case, PEM
/// or hex SPKI, extra fields) counts once. Two signatures in `signatures` with the same key id
/// (hex compared without regard to case) make the metadata invalid ([`Error::DuplicateSignature`]).
/// Keys of unsupported types simply contribute no valid signature.
pub(crate) fn verify_threshold(
    role: &str,
    msg: &SignedMessage<'_>,
    signatures: &[Signature],
    keyids: &[String],
    threshold: u64,
    keys: &BTreeMap<String, Key>,
) -> Result<()> {
    // "KEYID: The identifier of the key signing the ROLE object ... The keyid MUST be unique in
    // the "signatures" array: multiple signatures with the same keyid are not allowed."
    // (section "File formats: general principles"). Key ids are hex digests, so `ABCD…` and
    // `abcd…` name the same key id.
    let mut signature_ids = BTreeSet::new();
    for s in signatures {
        if !signature_ids.insert(s.keyid.to_ascii_lowercase()) {
            return Err(Error::DuplicateSignature {
                role: role.to_string(),
                keyid: s.keyid.clone(),
            });
        }
    }
    // "THRESHOLD: An integer number of keys of that role whose signatures are required in order
    // to consider a file as being properly signed by that role." A key is its material, not the
    // string that names it: count each decoded key once.
    let mut counted: BTreeSet<Verifier> = BTreeSet::new();
    for keyid in keyids {
        let Some(key) = keys.get(keyid) else { continue };
        let Ok(verifier) = Verifier::from_key(key) else {
            tracing::debug!(
                role,
                keyid,
                "key of unsupported type or malformed; its signature does not count"
            );
            continue;
        };
        if counted.contains(&verifier) {
            continue;
        }
        let valid = signatures
            .iter()
            .filter(|s| &s.keyid == keyid)
            .filter_map(|s| hex::decode(&s.sig).ok())
            .any(|sig| msg.verified_by(&verifier, &sig));
        if valid {
            counted.insert(verifier);
        }
    }
    let valid = counted.len();
    if (valid as u64) < threshold {
        return Err(Error::Threshold {
            role: role.to_string(),
            valid,
            threshold,
        });
    }
    Ok(())
}

/// Hash algorithms accepted in `hashes` objects.
pub fn hash_algorithm(name: &str) -> Option<&'static digest::Algorithm> {
    match name {
        "sha256" => Some(&digest::SHA256),
        "sha512" => Some(&digest::SHA512),
        _ => None,
    }
}

/// Incremental verification of length and every listed hash of a byte stream.
pub struct StreamVerifier {
    what: String,
    contexts: Vec<(String, Vec<u8>, digest::Context)>,
    length: u64,
}

impl StreamVerifier {
    /// Start verifying `what` against `hashes` (hex). Unknown algorithms are an error, because a
    /// hash that cannot be checked must not be skipped silently.
    pub fn new(what: &str, hashes: &BTreeMap<String, String>) -> Result<Self> {
        let mut contexts = Vec::new();
        for (alg, hex_hash) in hashes {
            let algorithm = hash_algorithm(alg).ok_or_else(|| {
                Error::malformed(what, format!("unsupported hash algorithm {alg:?}"))
            })?;
            let expected = hex::decode(hex_hash)
                .map_err(|_| Error::malformed(what, format!("{alg} hash is not hex")))?;
            contexts.push((alg.clone(), expected, digest::Context::new(algorithm)));
        }
        Ok(StreamVerifier {
            what: what.to_string(),
            contexts,
            length: 0,
        })
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.length += chunk.len() as u64;
        for (_, _, ctx) in &mut self.contexts {
            ctx.update(chunk);
        }
    }

    /// Bytes seen so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Check the final length (if given) and every hash.
    pub fn finish(self, expected_length: Option<u64>) -> Result<()> {
        if let Some(expected) = expected_length {
            if expected != self.length {
                return Err(Error::LengthMismatch {
                    what: self.what,
                    expected,
                    got: self.length,
                });
            }
        }
        for (alg, expected, ctx) in self.contexts {
            if ctx.finish().as_ref() != expected.as_slice() {
                return Err(Error::HashMismatch {
                    what: self.what,
                    algorithm: alg,
                });
            }
        }
        Ok(())
    }
}

/// Verify bytes held in memory against optional length and hashes.
pub(crate) fn verify_bytes(
    what: &str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let empty = BTreeMap::new();
    let mut v = StreamVerifier::new(what, hashes.unwrap_or(&empty))?;
    v.update(bytes);
    v.finish(length)
}

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// Key types the repository engine can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    #[default]
    Ed25519,
    EcdsaP256,
}

/// A private signing key as stored in a repository's `keys` directory (PKCS#8, hex).
#[derive(Clone, Serialize, Deserialize)]
pub struct PrivateKey {
    pub kind: KeyKind,
    pub public: Key,
    pkcs8: String,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .field("keyid", &key_id(&self.public).unwrap_or_default())
            .finish_non_exhaustive()
    }
}

fn pem_public(spki_der: &[u8]) -> Result<String> {
    spki::der::pem::encode_string("PUBLIC KEY", spki::der::pem::LineEnding::LF, spki_der)
        .map_err(|e| Error::Key(format!("PEM: {e}")))
}

impl PrivateKey {
    /// Generate a new key.
    pub fn generate(kind: KeyKind) -> Result<Self> {
        let rng = SystemRandom::new();
        match kind {
            KeyKind::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| Error::Key("ed25519 generation failed".into()))?;
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                    .map_err(|_| Error::Key("ed25519 key rejected".into()))?;
                Ok(PrivateKey {
                    kind,
                    public: Key {
                        keytype: "ed25519".into(),
                        scheme: "ed25519".into(),
                        keyval: KeyVal {
                            public: hex::encode(pair.public_key().as_ref()),
                            unknown: Default::default(),
                        },
                        unknown: Default::default(),
                    },
                    pkcs8: hex::encode(doc.as_ref()),
                })
            }
            KeyKind::EcdsaP256 => {
                let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
                let doc = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng)
                    .map_err(|_| Error::Key("ECDSA generation failed".into()))?;
                let pair = signature::EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng)
                    .map_err(|_| Error::Key("ECDSA key rejected".into()))?;
                let mut spki = P256_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(pair.public_key().as_ref());
                Ok(PrivateKey {
                    kind,
                    public: Key {
                        keytype: "ecdsa".into(),
                        scheme: "ecdsa-sha2-nistp256".into(),
                        keyval: KeyVal {
                            public: pem_public(&spki)?,
                            unknown: Default::default(),
                        },
                        unknown: Default::default(),
                    },
                    pkcs8: hex::encode(doc.as_ref()),
                })
            }
        }
    }

    /// This key's id.
    pub fn key_id(&self) -> Result<String> {
        key_id(&self.public)
    }

    /// Sign a message (the canonical form of a `signed` object).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let der = hex::decode(&self.pkcs8)
            .map_err(|_| Error::Key("stored private key is not hex".into()))?;
        match self.kind {
            KeyKind::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|_| Error::Key("stored ed25519 key rejected".into()))?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
            KeyKind::EcdsaP256 => {
                let rng = SystemRandom::new();
                let pair = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &der,
                    &rng,
                )
                .map_err(|_| Error::Key("stored ECDSA key rejected".into()))?;
                pair.sign(&rng, msg)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| Error::Key("ECDSA signing failed".into()))
            }
        }
    }

    /// Sign a `signed` object, returning a TUF signature.
    pub fn sign_value(&self, signed: &Value) -> Result<Signature> {
        let msg = canonical::encode(signed).map_err(|e| Error::Key(e.to_string()))?;
        Ok(Signature {
            keyid: self.key_id()?,
            sig: hex::encode(self.sign(&msg)?),
            unknown: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(
        signed: &Value,
        sigs: &[Signature],
        ids: &[String],
        t: u64,
        keys: &BTreeMap<String, Key>,
    ) -> Result<()> {
        let text = serde_json::to_string_pretty(signed).unwrap();
        verify_threshold("r", &SignedMessage::new(&text), sigs, ids, t, keys)
    }

    fn keymap(k: &PrivateKey) -> (String, BTreeMap<String, Key>) {
        let id = k.key_id().unwrap();
        (id.clone(), BTreeMap::from([(id, k.public.clone())]))
    }

    #[test]
    fn sign_and_verify_each_generated_kind() {
        for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256] {
            let k = PrivateKey::generate(kind).unwrap();
            let (id, keys) = keymap(&k);
            let signed = json!({"a": 1});
            let sig = k.sign_value(&signed).unwrap();
            check(
                &signed,
                std::slice::from_ref(&sig),
                std::slice::from_ref(&id),
                1,
                &keys,
            )
            .unwrap();
            // Over the canonical bytes themselves (the fast path) too.
            let canonical = String::from_utf8(canonical::encode(&signed).unwrap()).unwrap();
            let msg = SignedMessage::new(&canonical);
            verify_threshold(
                "r",
                &msg,
                std::slice::from_ref(&sig),
                std::slice::from_ref(&id),
                1,
                &keys,
            )
            .unwrap();
            // Tampered signed object fails.
            let err = check(&json!({"a": 2}), &[sig], &[id], 1, &keys).unwrap_err();
            assert!(matches!(err, Error::Threshold { valid: 0, .. }));
        }
    }

    #[test]
    fn duplicate_signature_key_ids_make_metadata_invalid() {
        let k = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let (id, keys) = keymap(&k);
        let signed = json!({"x": "y"});
        let sig = k.sign_value(&signed).unwrap();
        // Even with a threshold of 1 that the first signature meets.
        let err = check(
            &signed,
            &[sig.clone(), sig.clone()],
            std::slice::from_ref(&id),
            1,
            &keys,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateSignature { role, keyid } if role == "r" && *keyid == id),
            "{err}"
        );
        // The same key id in another hex case is the same key id.
        let mut upper = sig.clone();
        upper.keyid = id.to_ascii_uppercase();
        let err = check(&signed, &[sig, upper], std::slice::from_ref(&id), 1, &keys).unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateSignature { keyid, .. } if *keyid == id.to_ascii_uppercase()),
            "{err}"
        );
    }

    #[test]
    fn one_key_spelled_two_ways_counts_once() {
        // ed25519: hex in upper and lower case.
        let k = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let mut upper = k.public.clone();
        upper.keyval.public = upper.keyval.public.to_ascii_uppercase();
        // ECDSA: PEM and hex SPKI of the same point.
        let e = PrivateKey::generate(KeyKind::EcdsaP256).unwrap();
        let mut hex_spki = e.public.clone();
        hex_spki.keyval.public = hex::encode(spki_der(&e.public.keyval.public).unwrap());
        for (signer, a, b) in [
            (&k, k.public.clone(), upper),
            (&e, e.public.clone(), hex_spki),
        ] {
            let (id_a, id_b) = (key_id(&a).unwrap(), key_id(&b).unwrap());
            assert_ne!(id_a, id_b);
            let keys = BTreeMap::from([(id_a.clone(), a), (id_b.clone(), b)]);
            let signed = json!({"v": 1});
            let mut sig_a = signer.sign_value(&signed).unwrap();
            sig_a.keyid = id_a.clone();
            let mut sig_b = signer.sign_value(&signed).unwrap();
            sig_b.keyid = id_b.clone();
            let ids = [id_a, id_b];
            let err = check(&signed, &[sig_a.clone(), sig_b.clone()], &ids, 2, &keys).unwrap_err();
            assert!(matches!(err, Error::Threshold { valid: 1, .. }), "{err}");
            check(&signed, &[sig_a, sig_b], &ids, 1, &keys).unwrap();
        }
    }

    #[test]
    fn same_key_under_two_ids_counts_once() {
        let k = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let (id, mut keys) = keymap(&k);
        let mut alias = k.public.clone();
        alias.unknown.insert("x".into(), json!(1));
        let alias_id = key_id(&alias).unwrap();
        keys.insert(alias_id.clone(), alias);
        let signed = json!({});
        let mut sig2 = k.sign_value(&signed).unwrap();
        sig2.keyid = alias_id.clone();
        let sigs = [k.sign_value(&signed).unwrap(), sig2];
        let err = check(&signed, &sigs, &[id, alias_id], 2, &keys).unwrap_err();
        assert!(matches!(err, Error::Threshold { valid: 1, .. }));
    }

    #[test]
    fn key_id_of_core_fields_is_accepted_after_annotations() {
        let k = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let id = k.key_id().unwrap();
        let mut annotated = k.public.clone();
        annotated
            .unknown
            .insert("keyid_hash_algorithms".into(), json!(["md5"]));
        check_key_ids("root", &BTreeMap::from([(id.clone(), annotated.clone())])).unwrap();
        // Published with the annotation and the id over everything: also fine.
        let full = key_id(&annotated).unwrap();
        check_key_ids("root", &BTreeMap::from([(full, annotated)])).unwrap();
        assert_eq!(core_key_id(&k.public).unwrap(), id);
    }

    #[test]
    fn key_id_mismatch_is_detected() {
        let k = PrivateKey::generate(KeyKind::Ed25519).unwrap();
        let keys = BTreeMap::from([("00".repeat(32), k.public.clone())]);
        assert!(check_key_ids("root", &keys).is_err());
        let (_, good) = keymap(&k);
        check_key_ids("root", &good).unwrap();
    }

    #[test]
    fn stream_verifier_checks_length_and_hash() {
        let hashes = BTreeMap::from([("sha256".to_string(), sha256_hex(b"hello"))]);
        let mut v = StreamVerifier::new("t", &hashes).unwrap();
        v.update(b"hel");
        v.update(b"lo");
        v.finish(Some(5)).unwrap();
        assert!(verify_bytes("t", b"hellO", Some(5), Some(&hashes)).is_err());
        assert!(verify_bytes("t", b"hello", Some(6), Some(&hashes)).is_err());
        let bad = BTreeMap::from([("md5".to_string(), "00".to_string())]);
        assert!(StreamVerifier::new("t", &bad).is_err());
    }
}
