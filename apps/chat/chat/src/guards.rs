//! Who may call what: host methods only from another node's chat (its
//! node attached as [`Peer`]), `room_join` and `room_event` only from our
//! node's rooms hub, and who may watch which of our rooms.

use hearth_sdk::rpc::Via;
use hearth_sdk::{Address, AppError, Ctx};

use crate::error::ChatError;
use crate::model::Chat;
use crate::types::Profile;
use crate::{host, util, view};

/// The guard of host methods: the caller is the chat of another node;
/// attaches its node name.
pub struct Peer(pub String);

/// The host methods' guard: only another node's chat process.
pub fn peer(ctx: &mut Ctx) -> Result<(), AppError> {
    if ctx.via() != Via::Remote || ctx.caller().process() != hearth_sdk::our().process() {
        return Err(AppError::forbidden(
            "host methods are for other nodes' chat",
        ));
    }
    let node = ctx.caller().node().to_string();
    ctx.attach(Peer(node));
    Ok(())
}

/// The node of a host method's caller, attached by [`peer`].
pub fn peer_of(ctx: &Ctx) -> Result<String, AppError> {
    ctx.get::<Peer>()
        .map(|p| p.0.clone())
        .ok_or_else(|| AppError::forbidden("no peer"))
}

/// A joining node's profile as we keep it: under its own node name, or
/// the default one if what it sent breaks the profile rules.
pub fn peer_profile(caller: &str, profile: Profile) -> Profile {
    let profile = Profile {
        node: caller.to_string(),
        ..profile
    };
    if util::check_profile(&profile.display_name, &profile.color).is_ok() {
        profile
    } else {
        util::default_profile(caller)
    }
}

/// Whether `source` is our node's rooms hub.
pub fn is_hub(source: &Address) -> bool {
    let id = source.process();
    source.node() == hearth_sdk::our().node()
        && id.process() == "rooms"
        && id.package() == "distro"
        && id.publisher() == "sys"
}

/// Our own pages watch `view`; member nodes' chat processes watch the
/// rooms we host; nobody else watches anything.
pub fn may_watch(chat: &Chat, room: &str, subscriber: &Address) -> Result<(), AppError> {
    let our = hearth_sdk::our();
    let admitted = if room == view::VIEW_ROOM {
        subscriber.node() == our.node()
    } else {
        subscriber.process() == our.process() && host::admits(chat, room, subscriber.node())
    };
    if admitted {
        Ok(())
    } else {
        Err(ChatError::NotMember(format!("{subscriber} may not watch {room}")).into())
    }
}
