//! A remembered route decides as the kernel's full look-up would.

use super::*;
use crate::types::{Message, Request};
use mailbox::{mailbox, MailboxRx};

fn request(source: &Address, target: &Address, id: u64) -> KernelMessage {
    KernelMessage {
        id,
        source: source.clone(),
        target: target.clone(),
        rsvp: None,
        message: Message::Request(Request {
            inherit: false,
            expects_response: None,
            body: b"hi".to_vec(),
            metadata: None,
        }),
        blob: None,
    }
}

fn register(kernel: &Kernel, address: &Address, public: bool) -> MailboxRx {
    let (tx, rx) = mailbox(16, 1 << 20);
    let caps = ProcessCaps {
        public,
        ..ProcessCaps::default()
    };
    kernel
        .register(address.process.clone(), Endpoint { mailbox: tx, caps })
        .unwrap();
    rx
}

fn ids(rx: &mut MailboxRx) -> Vec<u64> {
    std::iter::from_fn(|| rx.try_recv())
        .map(|envelope| match envelope {
            Envelope::Message(km) => km.id,
            Envelope::Failed { id, .. } => id,
        })
        .collect()
}

#[test]
fn a_remembered_route_follows_revocations_and_endpoints_that_go() {
    let kernel = Kernel::new("n", Limits::default());
    let alpha: Address = "n@alpha:p:t".parse().unwrap();
    let beta: Address = "n@beta:p:t".parse().unwrap();
    let caps = ProcessCaps::default();
    let mut memo = RouteMemo::default();
    let mut beta_rx = register(&kernel, &beta, false);

    // No capability: refused, and nothing is remembered.
    let refused = kernel.route_remembered(request(&alpha, &beta, 1), &caps, &mut memo);
    assert_eq!(refused.unwrap_err().kind, SendErrorKind::CapabilityMissing);

    kernel.caps.grant_messaging(&alpha.process, &beta.process);
    for id in 2..5 {
        kernel
            .route_remembered(request(&alpha, &beta, id), &caps, &mut memo)
            .unwrap();
    }
    assert_eq!(ids(&mut beta_rx), vec![2, 3, 4]);

    // A revocation reaches the next send, remembered or not.
    kernel.caps.revoke_all(&alpha.process);
    let refused = kernel.route_remembered(request(&alpha, &beta, 5), &caps, &mut memo);
    assert_eq!(refused.unwrap_err().kind, SendErrorKind::CapabilityMissing);

    // So does an endpoint that went, and one that came in its place.
    kernel.caps.grant_messaging(&alpha.process, &beta.process);
    kernel
        .route_remembered(request(&alpha, &beta, 6), &caps, &mut memo)
        .unwrap();
    kernel.unregister(&beta.process);
    let gone = kernel.route_remembered(request(&alpha, &beta, 7), &caps, &mut memo);
    assert_eq!(gone.unwrap_err().kind, SendErrorKind::UnknownProcess);
    let mut again_rx = register(&kernel, &beta, true);
    kernel
        .route_remembered(request(&alpha, &beta, 8), &caps, &mut memo)
        .unwrap();
    assert_eq!(ids(&mut beta_rx), vec![6]);
    assert_eq!(ids(&mut again_rx), vec![8]);

    // The size limit holds on the remembered route too.
    let mut big = request(&alpha, &beta, 9);
    if let Message::Request(r) = &mut big.message {
        r.body = vec![0; kernel.limits().max_message_bytes + 1];
    }
    let refused = kernel.route_remembered(big, &caps, &mut memo);
    assert_eq!(refused.unwrap_err().kind, SendErrorKind::PayloadTooLarge);
}

#[tokio::test]
async fn a_memo_does_not_keep_a_gone_endpoint_s_mailbox_open() {
    let kernel = Kernel::new("n", Limits::default());
    let alpha: Address = "n@alpha:p:t".parse().unwrap();
    let beta: Address = "n@beta:p:t".parse().unwrap();
    let mut memo = RouteMemo::default();
    let mut beta_rx = register(&kernel, &beta, true);
    kernel
        .route_remembered(
            request(&alpha, &beta, 1),
            &ProcessCaps::default(),
            &mut memo,
        )
        .unwrap();
    kernel.unregister(&beta.process);
    // The table's sender was the last: the receiver drains, then ends.
    let drained = async {
        let mut got = Vec::new();
        while let Some(Envelope::Message(km)) = beta_rx.recv().await {
            got.push(km.id);
        }
        got
    };
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), drained)
        .await
        .expect("the mailbox ends once the table's sender is gone");
    assert_eq!(got, vec![1]);
}
