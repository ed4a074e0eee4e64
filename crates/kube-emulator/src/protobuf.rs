//! Request bodies in the API server's protobuf encoding (`application/vnd.kubernetes.protobuf`), for
//! the kinds a client is known to send that way. client-go's typed clients for built-in kinds write
//! protobuf by default (its leader election creates and updates its Lease so), and a real API server
//! accepts it for every built-in kind; this emulator decodes Leases into the same JSON object a JSON
//! body would have given, and refuses any other kind with 415 naming the kind.
//!
//! The wire form: the four bytes `k8s\0`, then a `runtime.Unknown` message (1: TypeMeta {1: apiVersion,
//! 2: kind}, 2: raw bytes of the object's own message, 3: contentEncoding, 4: contentType). Field
//! numbers below are those of the apiserver's `generated.proto` files.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::resource::Resource;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtobufError {
    #[error("protobuf bodies are accepted for Leases only by this emulator, not for {0}; send application/json")]
    UnsupportedKind(&'static str),
    #[error("the protobuf body does not start with the Kubernetes envelope (k8s\\0)")]
    NoEnvelope,
    #[error("malformed protobuf in {context}: {reason}")]
    Malformed { context: &'static str, reason: &'static str },
    #[error("the protobuf body holds {api_version}/{kind}, not the {expected} this path serves")]
    WrongKind { api_version: String, kind: String, expected: &'static str },
    #[error("{context}: {field} is not valid UTF-8")]
    Utf8 { context: &'static str, field: &'static str },
    #[error("{context}: timestamp {seconds}s {nanos}ns is out of range")]
    Time { context: &'static str, seconds: i64, nanos: i64 },
}

/// Decodes a protobuf request body for `resource` into its JSON object.
pub fn decode(resource: Resource, body: &[u8]) -> Result<Value, ProtobufError> {
    if resource != Resource::Leases {
        return Err(ProtobufError::UnsupportedKind(resource.kind()));
    }
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoEnvelope)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for field in Fields::new(envelope, "the envelope") {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for f in Fields::new(type_meta, "the envelope's TypeMeta") {
                    match f? {
                        (1, Wire::Bytes(b)) => api_version = text(b, "the envelope's TypeMeta", "apiVersion")?,
                        (2, Wire::Bytes(b)) => kind = text(b, "the envelope's TypeMeta", "kind")?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if api_version != resource.api_version() || kind != resource.kind() {
        return Err(ProtobufError::WrongKind { api_version, kind, expected: resource.kind() });
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    for field in Fields::new(raw, "the Lease") {
        match field? {
            (1, Wire::Bytes(b)) => {
                object.insert("metadata".into(), object_meta(b)?);
            }
            (2, Wire::Bytes(b)) => {
                object.insert("spec".into(), lease_spec(b)?);
            }
            _ => {}
        }
    }
    Ok(Value::Object(object))
}

/// `ObjectMeta`: empty strings, zero numbers and zero times are left out, as Go's JSON encoding of the
/// same struct leaves them (`omitempty`).
fn object_meta(bytes: &[u8]) -> Result<Value, ProtobufError> {
    const CTX: &str = "metadata";
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut owners = Vec::new();
    let mut finalizers = Vec::new();
    let mut managed = Vec::new();
    for field in Fields::new(bytes, CTX) {
        let (number, wire) = field?;
        let name = match number {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            4 => "selfLink",
            5 => "uid",
            6 => "resourceVersion",
            7 => "generation",
            8 => "creationTimestamp",
            9 => "deletionTimestamp",
            10 => "deletionGracePeriodSeconds",
            _ => "",
        };
        match (number, wire) {
            (1..=6, Wire::Bytes(b)) => {
                let value = text(b, CTX, name)?;
                if !value.is_empty() {
                    meta.insert(name.into(), json!(value));
                }
            }
            (7 | 10, Wire::Varint(v)) if v != 0 => {
                meta.insert(name.into(), json!(v as i64));
            }
            (8 | 9, Wire::Bytes(b)) => {
                if let Some(t) = time(b, CTX, false)? {
                    meta.insert(name.into(), json!(t));
                }
            }
            (11, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b, "metadata.labels")?;
                labels.insert(k, json!(v));
            }
            (12, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b, "metadata.annotations")?;
                annotations.insert(k, json!(v));
            }
            (13, Wire::Bytes(b)) => owners.push(owner_reference(b)?),
            (14, Wire::Bytes(b)) => finalizers.push(json!(text(b, CTX, "finalizers")?)),
            (17, Wire::Bytes(b)) => managed.push(managed_fields_entry(b)?),
            _ => {}
        }
    }
    for (key, values) in [("labels", labels), ("annotations", annotations)] {
        if !values.is_empty() {
            meta.insert(key.into(), Value::Object(values));
        }
    }
    for (key, values) in [("ownerReferences", owners), ("finalizers", finalizers), ("managedFields", managed)] {
        if !values.is_empty() {
            meta.insert(key.into(), Value::Array(values));
        }
    }
    Ok(Value::Object(meta))
}

fn owner_reference(bytes: &[u8]) -> Result<Value, ProtobufError> {
    const CTX: &str = "metadata.ownerReferences";
    let mut owner = Map::new();
    for field in Fields::new(bytes, CTX) {
        match field? {
            (1, Wire::Bytes(b)) => {
                owner.insert("kind".into(), json!(text(b, CTX, "kind")?));
            }
            (3, Wire::Bytes(b)) => {
                owner.insert("name".into(), json!(text(b, CTX, "name")?));
            }
            (4, Wire::Bytes(b)) => {
                owner.insert("uid".into(), json!(text(b, CTX, "uid")?));
            }
            (5, Wire::Bytes(b)) => {
                owner.insert("apiVersion".into(), json!(text(b, CTX, "apiVersion")?));
            }
            (6, Wire::Varint(v)) => {
                owner.insert("controller".into(), json!(v != 0));
            }
            (7, Wire::Varint(v)) => {
                owner.insert("blockOwnerDeletion".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(owner))
}

fn managed_fields_entry(bytes: &[u8]) -> Result<Value, ProtobufError> {
    const CTX: &str = "metadata.managedFields";
    let mut entry = Map::new();
    for field in Fields::new(bytes, CTX) {
        match field? {
            (1, Wire::Bytes(b)) => {
                entry.insert("manager".into(), json!(text(b, CTX, "manager")?));
            }
            (2, Wire::Bytes(b)) => {
                entry.insert("operation".into(), json!(text(b, CTX, "operation")?));
            }
            (3, Wire::Bytes(b)) => {
                entry.insert("apiVersion".into(), json!(text(b, CTX, "apiVersion")?));
            }
            (4, Wire::Bytes(b)) => {
                if let Some(t) = time(b, CTX, false)? {
                    entry.insert("time".into(), json!(t));
                }
            }
            (6, Wire::Bytes(b)) => {
                entry.insert("fieldsType".into(), json!(text(b, CTX, "fieldsType")?));
            }
            (7, Wire::Bytes(b)) => {
                // FieldsV1 {1: raw}: the raw bytes are the JSON of the field set.
                for f in Fields::new(b, CTX) {
                    if let (1, Wire::Bytes(raw)) = f? {
                        let fields: Value = serde_json::from_slice(raw)
                            .map_err(|_| ProtobufError::Malformed { context: CTX, reason: "fieldsV1 is not JSON" })?;
                        entry.insert("fieldsV1".into(), fields);
                    }
                }
            }
            (8, Wire::Bytes(b)) => {
                entry.insert("subresource".into(), json!(text(b, CTX, "subresource")?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(entry))
}

/// `LeaseSpec`: every field is optional (a pointer in Go) and present exactly when it was sent.
fn lease_spec(bytes: &[u8]) -> Result<Value, ProtobufError> {
    const CTX: &str = "spec";
    let mut spec = Map::new();
    for field in Fields::new(bytes, CTX) {
        match field? {
            (1, Wire::Bytes(b)) => {
                spec.insert("holderIdentity".into(), json!(text(b, CTX, "holderIdentity")?));
            }
            (2, Wire::Varint(v)) => {
                spec.insert("leaseDurationSeconds".into(), json!(v as i32));
            }
            (3, Wire::Bytes(b)) => {
                spec.insert("acquireTime".into(), json!(time(b, CTX, true)?));
            }
            (4, Wire::Bytes(b)) => {
                spec.insert("renewTime".into(), json!(time(b, CTX, true)?));
            }
            (5, Wire::Varint(v)) => {
                spec.insert("leaseTransitions".into(), json!(v as i32));
            }
            (6, Wire::Bytes(b)) => {
                spec.insert("strategy".into(), json!(text(b, CTX, "strategy")?));
            }
            (7, Wire::Bytes(b)) => {
                spec.insert("preferredHolder".into(), json!(text(b, CTX, "preferredHolder")?));
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

/// A `Time` or `MicroTime` ({1: seconds, 2: nanos}) in the JSON form Go writes: RFC 3339 in whole
/// seconds for `Time`, with microseconds for `MicroTime`. An empty message is the zero time, which
/// Go writes as null.
fn time(bytes: &[u8], context: &'static str, micro: bool) -> Result<Option<String>, ProtobufError> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for field in Fields::new(bytes, context) {
        match field? {
            (1, Wire::Varint(v)) => seconds = v as i64,
            (2, Wire::Varint(v)) => nanos = i64::from(v as i32),
            _ => {}
        }
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    let out_of_range = || ProtobufError::Time { context, seconds, nanos };
    let nanos32 = i32::try_from(nanos).map_err(|_| out_of_range())?;
    let ts = Timestamp::new(seconds, nanos32).map_err(|_| out_of_range())?;
    let whole = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(if micro { format!("{whole}.{:06}Z", nanos32 / 1000) } else { format!("{whole}Z") }))
}

fn map_entry(bytes: &[u8], context: &'static str) -> Result<(String, String), ProtobufError> {
    let (mut key, mut value) = (String::new(), String::new());
    for field in Fields::new(bytes, context) {
        match field? {
            (1, Wire::Bytes(b)) => key = text(b, context, "key")?,
            (2, Wire::Bytes(b)) => value = text(b, context, "value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn text(bytes: &[u8], context: &'static str, field: &'static str) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Utf8 { context, field })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// 32- and 64-bit fixed fields: no field decoded here has one, so they are only skipped.
    Fixed,
}

/// The fields of one message, in order; stops at the first malformed one.
struct Fields<'a> {
    rest: &'a [u8],
    context: &'static str,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], context: &'static str) -> Self {
        Fields { rest: bytes, context, failed: false }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed { context: self.context, reason: "truncated or overlong varint" })
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ProtobufError> {
        let n = usize::try_from(n).ok().filter(|n| *n <= self.rest.len());
        let n = n.ok_or(ProtobufError::Malformed { context: self.context, reason: "length beyond the body" })?;
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<(u32, Wire<'a>), ProtobufError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ProtobufError::Malformed { context: self.context, reason: "invalid field number" })?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed)?,
            2 => {
                let len = self.varint()?;
                Wire::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed)?,
            _ => return Err(ProtobufError::Malformed { context: self.context, reason: "unsupported wire type" }),
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.next_field();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// The body client-go v0.32.13 (the Go ib-kubernetes daemon's leader election) sent to create its
    /// Lease, captured from the wire.
    const CLIENT_GO_CREATE: &str = include_str!("../tests/fixtures/client-go-lease-create.b64");
    /// The body it sent to take over a Lease another holder had let expire: the object as it read it
    /// (JSON), changed and sent back.
    const CLIENT_GO_UPDATE: &str = include_str!("../tests/fixtures/client-go-lease-update.b64");

    fn body(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap()
    }

    #[test]
    fn client_go_lease_create_decodes_to_what_its_json_would_be() {
        let lease = decode(Resource::Leases, &body(CLIENT_GO_CREATE)).unwrap();
        assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(lease["kind"], "Lease");
        assert_eq!(lease["metadata"], json!({"name": "ib-kubernetes-leader", "namespace": "kube-system"}));
        let spec = &lease["spec"];
        assert_eq!(spec["holderIdentity"], "control-plane-1_go-replica");
        assert_eq!(spec["leaseDurationSeconds"], 60);
        assert_eq!(spec["leaseTransitions"], 0);
        let renew = spec["renewTime"].as_str().unwrap();
        assert_eq!(spec["acquireTime"].as_str(), Some(renew));
        // MicroTime: six fractional digits, UTC.
        assert_eq!(renew.len(), "2026-12-02T10:00:51.123456Z".len(), "{renew}");
        assert!(renew.ends_with('Z') && renew.as_bytes()[19] == b'.', "{renew}");
        assert!(spec.get("strategy").is_none() && spec.get("preferredHolder").is_none());
    }

    #[test]
    fn client_go_lease_update_keeps_what_it_read() {
        let lease = decode(Resource::Leases, &body(CLIENT_GO_UPDATE)).unwrap();
        assert_eq!(
            lease["metadata"],
            json!({
                "name": "ib-kubernetes-leader", "namespace": "kube-system",
                "uid": "88e715e5-7161-4f40-b9c0-209f76751dfd", "resourceVersion": "17",
                "creationTimestamp": "2026-12-02T10:01:46Z",
                "labels": {"app": "ib-kubernetes"}, "annotations": {"note": "held by a replica that died"}
            })
        );
        assert_eq!(lease["spec"]["holderIdentity"], "control-plane-1_go-replica");
        assert_eq!(lease["spec"]["leaseTransitions"], 4);
        assert_eq!(lease["spec"]["acquireTime"], lease["spec"]["renewTime"]);
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused_with_a_reason() {
        let good = body(CLIENT_GO_CREATE);
        assert_eq!(decode(Resource::Pods, &good), Err(ProtobufError::UnsupportedKind("Pod")));
        assert_eq!(decode(Resource::Leases, b"{\"kind\":\"Lease\"}"), Err(ProtobufError::NoEnvelope));
        // Every truncation is an error or a smaller object, never a panic.
        for n in 0..good.len() {
            let _ = decode(Resource::Leases, &good[..n]);
        }
        let err = decode(Resource::Leases, &good[..good.len() / 2]).unwrap_err();
        assert!(matches!(err, ProtobufError::Malformed { .. }), "{err}");
        // A Pod in the envelope, sent to the Lease path.
        let mut wrong = MAGIC.to_vec();
        wrong.extend([0x0a, 0x07, 0x0a, 0x02, b'v', b'1', 0x12, 0x01, b'x']);
        let err = decode(Resource::Leases, &wrong).unwrap_err().to_string();
        assert!(err.contains("v1/x") && err.contains("Lease"), "{err}");
    }

    #[test]
    fn metadata_round_trips_what_a_client_sends_back_on_update() {
        // metadata {name, namespace, uid, resourceVersion, creationTimestamp, labels, annotations}
        let mut meta = Vec::new();
        for (n, v) in [(1u8, "l"), (3, "ns"), (5, "u-1"), (6, "42")] {
            meta.extend([n << 3 | 2, v.len() as u8]);
            meta.extend(v.as_bytes());
        }
        meta.extend([8 << 3 | 2, 6, 0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06]); // 1700000000 s: 2023-11-14T22:13:20Z
        meta.extend([11 << 3 | 2, 6, 0x0a, 0x01, b'a', 0x12, 0x01, b'b']);
        meta.extend([12 << 3 | 2, 6, 0x0a, 0x01, b'c', 0x12, 0x01, b'd']);
        let mut lease = vec![0x0a, meta.len() as u8];
        lease.extend(&meta);
        let type_meta = [&[0x0a, 22][..], b"coordination.k8s.io/v1", &[0x12, 5], b"Lease"].concat();
        let mut envelope = MAGIC.to_vec();
        envelope.extend([0x0a, type_meta.len() as u8]);
        envelope.extend(&type_meta);
        envelope.extend([0x12, lease.len() as u8]);
        envelope.extend(&lease);
        let decoded = decode(Resource::Leases, &envelope).unwrap();
        assert_eq!(
            decoded["metadata"],
            json!({"name": "l", "namespace": "ns", "uid": "u-1", "resourceVersion": "42",
                   "creationTimestamp": "2023-11-14T22:13:20Z", "labels": {"a": "b"}, "annotations": {"c": "d"}})
        );
    }
}
