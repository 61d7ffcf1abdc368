//! The node's ed25519 key pair, kept in `<home>/identity.key` with
//! owner-only permissions. Its libp2p `PeerId` is the node's network
//! identity; its name is bound to it by a signed [`super::record::NameRecord`].

use std::path::Path;

use libp2p::identity::Keypair;

use super::NetError;

pub const KEY_FILE: &str = "identity.key";

pub fn load_or_create(home: &Path) -> Result<Keypair, NetError> {
    let path = home.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| NetError::Identity {
            path: path.display().to_string(),
            reason: format!(
                "{e}. The key file is unreadable; restore it from a backup, or move it \
                 aside to start with a new identity (peers will see a new node)"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| NetError::Identity {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            crate::util::write_private(&path, &bytes).map_err(|e| NetError::Identity {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            Ok(keypair)
        }
        Err(e) => Err(NetError::Identity {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}
