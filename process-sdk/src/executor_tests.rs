//! Wake-up-by-id tests of the executor, run on the host: they build `Ask`s
//! and replies directly, without the kernel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::*;
use crate::{wit, SendErrorKind};

fn address() -> wit::Address {
    wit::Address {
        node: "home".into(),
        process: wit::ProcessId {
            process: "p".into(),
            package: "k".into(),
            publisher: "pub".into(),
        },
    }
}

fn response(id: u64, body: &[u8]) -> Incoming {
    Incoming::from(wit::Incoming {
        id,
        source: address(),
        message: wit::Message::Response(wit::Response {
            body: body.to_vec(),
            metadata: None,
        }),
        blob: None,
        context: None,
    })
}

fn timeout(id: u64) -> Failure {
    Failure::from(wit::Failure {
        id,
        error: wit::SendError {
            kind: wit::SendErrorKind::Timeout,
            target: address(),
            detail: "no answer".into(),
        },
        context: Some(b"ctx".to_vec()),
    })
}

type Outcome = Rc<RefCell<Option<Result<Incoming, SendError>>>>;

/// Spawns a task that awaits `ask`, counting its polls and keeping its result.
fn watch(ask: Ask) -> (Rc<Cell<u32>>, Outcome) {
    let polls = Rc::new(Cell::new(0));
    let result = Rc::new(RefCell::new(None));
    let (task_polls, task_result) = (polls.clone(), result.clone());
    let mut ask = Box::pin(ask);
    spawn_task(std::future::poll_fn(move |cx| {
        task_polls.set(task_polls.get() + 1);
        match ask.as_mut().poll(cx) {
            Poll::Ready(outcome) => {
                *task_result.borrow_mut() = Some(outcome);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }));
    (polls, result)
}

#[test]
fn only_the_task_awaiting_the_id_is_polled() {
    let (polls_a, result_a) = watch(Ask::waiting(7));
    let (polls_b, result_b) = watch(Ask::waiting(8));
    run_ready();
    assert_eq!((polls_a.get(), polls_b.get()), (1, 1));

    assert!(claim_response(response(7, b"seven")).is_none());
    run_ready();
    assert_eq!((polls_a.get(), polls_b.get()), (2, 1));
    let body = result_a
        .borrow_mut()
        .take()
        .map(|r| r.map(Incoming::into_body));
    assert_eq!(body, Some(Ok(b"seven".to_vec())));
    assert!(result_b.borrow().is_none());

    // The slot of 7 is gone: a second reply with that id goes to the app.
    assert!(claim_response(response(7, b"again")).is_some());
    // So does a reply no one waits for; task b is not polled for it.
    assert!(claim_response(response(99, b"stray")).is_some());
    run_ready();
    assert_eq!(polls_b.get(), 1);
}

#[test]
fn a_failure_resolves_to_its_send_error() {
    let (_, result) = watch(Ask::waiting(3));
    run_ready();
    assert!(claim_failure(timeout(3)).is_none());
    run_ready();
    let outcome = result.borrow_mut().take();
    match outcome {
        Some(Err(error)) => {
            assert_eq!(error.kind(), SendErrorKind::Timeout);
            assert_eq!(error.detail(), "no answer");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_reply_before_the_first_poll_is_kept() {
    let ask = Ask::waiting(5);
    assert!(claim_response(response(5, b"early")).is_none());
    let (polls, result) = watch(ask);
    run_ready();
    assert_eq!(polls.get(), 1);
    assert!(matches!(&*result.borrow(), Some(Ok(_))));
}

#[test]
fn an_immediate_error_resolves_on_first_poll() {
    let error = SendError::new(SendErrorKind::MailboxFull, address().into(), "");
    let ask = Ask::failed(error.clone());
    assert_eq!(ask.id(), None);
    let (_, result) = watch(ask);
    run_ready();
    assert_eq!(
        result.borrow_mut().take().and_then(Result::err),
        Some(error)
    );
}

#[test]
fn dropping_an_ask_hands_its_reply_to_the_app() {
    let ask = Ask::waiting(11);
    assert_eq!(ask.id(), Some(11));
    drop(ask);
    assert!(claim_failure(timeout(11)).is_some());
}

#[test]
fn a_task_awaits_several_asks_in_turn() {
    let steps = Rc::new(RefCell::new(Vec::new()));
    let log = steps.clone();
    spawn_task(async move {
        for id in [21, 22] {
            let reply = Ask::waiting(id).await;
            log.borrow_mut().push(reply.map(|r| r.id()).ok());
        }
    });
    run_ready();
    assert!(
        claim_response(response(22, b"")).is_some(),
        "22 is not awaited yet"
    );
    assert!(claim_response(response(21, b"")).is_none());
    run_ready();
    assert!(claim_response(response(22, b"")).is_none());
    run_ready();
    assert_eq!(*steps.borrow(), vec![Some(21), Some(22)]);
}
