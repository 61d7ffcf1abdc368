//! Signed name records: `name`, peer id, addresses and a sequence number,
//! signed by the key the peer id derives from. Anyone can check a record;
//! nobody without the key can make one for that peer id.

use libp2p::identity::PublicKey;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// Largest encoded record accepted from the network.
pub const MAX_RECORD_BYTES: usize = 8 * 1024;
/// Longest node name: a DNS label's worth, plus its suffix.
pub const MAX_NAME_LEN: usize = 64;
/// Addresses a record may list: every transport on a few interfaces.
pub const MAX_ADDRS: usize = 16;
/// Longest multiaddr string accepted in a record.
const MAX_ADDR_LEN: usize = 256;
/// Protobuf public keys and signatures are well under this (ed25519:
/// 36 and 64 bytes).
const MAX_KEY_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    pub name: String,
    /// Base58 peer id.
    pub peer_id: String,
    /// Multiaddresses the node listens on.
    pub addrs: Vec<String>,
    /// Higher replaces lower for the same name and key.
    pub seq: u64,
    /// Protobuf-encoded public key.
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record does not decode: {0}")]
    Decode(String),
    #[error("record's public key is invalid")]
    Key,
    #[error("record's peer id is not derived from its key")]
    PeerMismatch,
    #[error("record's signature is invalid")]
    Signature,
    #[error("record's name {0:?} is not a valid node name")]
    Name(String),
    #[error("record is too large: {0}")]
    Size(&'static str),
}

fn signed_bytes(name: &str, peer_id: &str, addrs: &[String], seq: u64) -> Vec<u8> {
    let mut out = b"hearth-name-record-v1".to_vec();
    for part in [name, peer_id] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(&(addrs.len() as u32).to_be_bytes());
    for a in addrs {
        out.extend_from_slice(&(a.len() as u32).to_be_bytes());
        out.extend_from_slice(a.as_bytes());
    }
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

impl NameRecord {
    pub fn sign(
        keypair: &libp2p::identity::Keypair,
        name: &str,
        addrs: Vec<String>,
        seq: u64,
    ) -> Result<Self, RecordError> {
        let peer_id = PeerId::from(keypair.public()).to_base58();
        let signature = keypair
            .sign(&signed_bytes(name, &peer_id, &addrs, seq))
            .map_err(|_| RecordError::Signature)?;
        Ok(Self {
            name: name.to_string(),
            peer_id,
            addrs,
            seq,
            public_key: keypair.public().encode_protobuf(),
            signature,
        })
    }

    /// Check shape and size, then key, peer id and signature; returns the
    /// peer id. Every path that takes a record from outside calls this.
    pub fn verify(&self) -> Result<PeerId, RecordError> {
        self.check_shape()?;
        let key = PublicKey::try_decode_protobuf(&self.public_key).map_err(|_| RecordError::Key)?;
        let peer = PeerId::from(key.clone());
        if peer.to_base58() != self.peer_id {
            return Err(RecordError::PeerMismatch);
        }
        let bytes = signed_bytes(&self.name, &self.peer_id, &self.addrs, self.seq);
        if !key.verify(&bytes, &self.signature) {
            return Err(RecordError::Signature);
        }
        Ok(peer)
    }

    /// Name rules and size limits, checked before any signature work.
    fn check_shape(&self) -> Result<(), RecordError> {
        if self.name.len() > MAX_NAME_LEN || !crate::types::valid_name(&self.name, true) {
            return Err(RecordError::Name(self.name.chars().take(80).collect()));
        }
        if self.addrs.len() > MAX_ADDRS {
            return Err(RecordError::Size("too many addresses"));
        }
        if self.addrs.iter().any(|a| a.len() > MAX_ADDR_LEN) {
            return Err(RecordError::Size("an address is too long"));
        }
        if self.public_key.len() > MAX_KEY_LEN
            || self.signature.len() > MAX_KEY_LEN
            || self.peer_id.len() > MAX_KEY_LEN
        {
            return Err(RecordError::Size("key, peer id or signature too long"));
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let config = bincode::config::standard().with_limit::<MAX_RECORD_BYTES>();
        bincode::serde::decode_from_slice(bytes, config)
            .map(|(r, _)| r)
            .map_err(|e| RecordError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    #[test]
    fn signed_records_verify_and_tampering_is_caught() {
        let key = Keypair::generate_ed25519();
        let record =
            NameRecord::sign(&key, "alice.os", vec!["/ip4/127.0.0.1/tcp/1".into()], 1).unwrap();
        assert_eq!(record.verify().unwrap(), PeerId::from(key.public()));
        let round = NameRecord::from_bytes(&record.to_bytes()).unwrap();
        assert_eq!(round, record);

        let mut renamed = record.clone();
        renamed.name = "mallory.os".into();
        assert_eq!(renamed.verify(), Err(RecordError::Signature));

        // Another key cannot claim the first key's peer id.
        let other = Keypair::generate_ed25519();
        let mut stolen = NameRecord::sign(&other, "alice.os", vec![], 2).unwrap();
        stolen.peer_id = record.peer_id.clone();
        assert_eq!(stolen.verify(), Err(RecordError::PeerMismatch));
    }

    #[test]
    fn bad_names_and_oversized_records_are_refused_before_signature_work() {
        let key = Keypair::generate_ed25519();
        for name in ["", "ALICE.os", "a/b.os", "a b.os", &"a".repeat(70)] {
            let record = NameRecord::sign(&key, name, vec![], 1).unwrap();
            assert!(
                matches!(record.verify(), Err(RecordError::Name(_))),
                "{name}"
            );
        }
        let many = vec!["/ip4/1.2.3.4/tcp/1".to_string(); MAX_ADDRS + 1];
        let record = NameRecord::sign(&key, "alice.os", many, 1).unwrap();
        assert!(matches!(record.verify(), Err(RecordError::Size(_))));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Random and mutated record bytes never panic and never verify.
        #[test]
        fn random_and_mutated_records_fail_cleanly(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            if let Ok(record) = NameRecord::from_bytes(&junk) {
                proptest::prop_assert!(record.verify().is_err());
            }
            let key = Keypair::generate_ed25519();
            let mut bytes = NameRecord::sign(&key, "bob.os", vec!["/ip4/1.2.3.4/tcp/9".into()], 3)
                .unwrap()
                .to_bytes();
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1.max(1);
            if let Ok(record) = NameRecord::from_bytes(&bytes) {
                // A flipped byte may leave a valid record only if it fell
                // outside the signed fields (it cannot: all are signed).
                proptest::prop_assert!(record.verify().is_err());
            }
        }
    }
}
