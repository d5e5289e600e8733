//! Faults upstream: a fault-injecting TCP proxy in front of moto refuses connections,
//! delays past the timeout, answers 500, or answers `TooManyRequestsException`. For each,
//! the documented status comes back within the timeout plus a second, without AWS text,
//! audited; and the gateway serves normally once the fault is lifted. Also the JWKS
//! side: an issuer whose keys cannot be fetched at start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{Options, moto_url, spawn_app_with};

/// What the proxy does with each new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward to moto.
    None,
    /// Accept and close at once, before any answer.
    Refuse,
    /// Accept, read the request, and never answer.
    Hang,
    /// Answer every request with a 500 and an AWS message.
    ServerError,
    /// Answer every request as Cognito does when throttling.
    Throttle,
}

const AWS_TEXT: &str = "internal-aws-text-that-must-not-leak";

/// Starts the proxy; changing the sent value applies the fault to every connection,
/// open ones included (they are closed).
async fn fault_proxy(upstream: String) -> (String, watch::Sender<Fault>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (set, faults) = watch::channel(Fault::None);
    let upstream = Arc::new(upstream.trim_start_matches("http://").to_owned());
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let (upstream, mut faults) = (upstream.clone(), faults.clone());
            tokio::spawn(async move {
                let fault = *faults.borrow_and_update();
                let changed = faults.changed();
                tokio::select! {
                    () = serve(client, &upstream, fault) => {}
                    _ = changed => {} // dropping the streams closes the connection
                }
            });
        }
    });
    (url, set)
}

async fn serve(mut client: TcpStream, upstream: &str, fault: Fault) {
    match fault {
        Fault::None => {
            let mut server = TcpStream::connect(upstream).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Fault::Refuse => drop(client),
        Fault::Hang => {
            read_request(&mut client).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::ServerError | Fault::Throttle => {
            while read_request(&mut client).await {
                let (status, kind) = if fault == Fault::Throttle {
                    ("400 Bad Request", "TooManyRequestsException")
                } else {
                    ("500 Internal Server Error", "InternalErrorException")
                };
                let body = json!({"__type": kind, "message": AWS_TEXT}).to_string();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: fault-proxy\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if client.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one HTTP request (head and `content-length` body); false at end of stream.
async fn read_request(client: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

#[tokio::test]
async fn each_upstream_fault_gets_its_status_in_time_without_aws_text_audited_and_then_recovers() {
    // Arrange: the timeout leaves room for the SDK's standard retries (3 attempts,
    // backoffs of at most 1 s and 2 s), so that a failing Cognito is reported as what it
    // is (502, 429) and only one that never answers runs into the timeout (504).
    const TIMEOUT: u64 = 5;
    let (proxy, faults) = fault_proxy(moto_url()).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(proxy),
        cognito_timeout_seconds: TIMEOUT,
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);
    // The pool's schema is cached first, so that each fault meets the update itself.
    let warm = app
        .patch(&token, json!({"attributes": {"given_name": "Warm"}}))
        .await;
    assert_eq!(warm.status, 200, "{}", warm.body);
    let cases = [
        (Fault::Refuse, 502, "dispatch_failure"),
        (Fault::Hang, 504, "timeout"),
        (Fault::ServerError, 502, "InternalErrorException"),
        (Fault::Throttle, 429, "TooManyRequestsException"),
    ];

    for (round, (fault, status, outcome)) in cases.into_iter().enumerate() {
        // Act: the fault, then the fault lifted.
        faults.send(fault).unwrap();
        let started = Instant::now();
        let faulty = app
            .patch(
                &token,
                json!({"attributes": {"given_name": format!("F{round}")}}),
            )
            .await;
        let took = started.elapsed();
        faults.send(Fault::None).unwrap();
        let healthy = app
            .patch(
                &token,
                json!({"attributes": {"given_name": format!("H{round}")}}),
            )
            .await;

        // Assert
        faulty.assert_problem(status);
        assert!(
            took < Duration::from_secs(TIMEOUT + 1),
            "{fault:?} took {took:?}"
        );
        assert!(
            !faulty.body.to_string().contains(AWS_TEXT),
            "{}",
            faulty.body
        );
        let audited = app.audit_records();
        let record = audited
            .iter()
            .rev()
            .find(|r| r["request_id"] == faulty.body["request_id"] && r["event"] == "outcome")
            .unwrap_or_else(|| panic!("{fault:?}: no outcome record"));
        assert_eq!(record["outcome"], outcome, "{fault:?}");
        assert_eq!(healthy.status, 200, "{fault:?} lifted: {}", healthy.body);
        assert_eq!(app.ann().await["given_name"], format!("H{round}"));
    }
}

#[tokio::test]
async fn an_issuer_whose_keys_cannot_be_fetched_at_start_up_is_not_ready_then_ready_by_itself() {
    // Arrange
    let app = spawn_app_with(Options {
        jwks_down: true,
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    // Act
    let not_ready = app.get("/readyz").await;
    let refused = app
        .patch(&token, json!({"attributes": {"nickname": "early"}}))
        .await;
    app.jwks
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ready = app.get("/readyz").await;
    while ready.status != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ready = app.get("/readyz").await;
    }
    let accepted = app
        .patch(&token, json!({"attributes": {"nickname": "later"}}))
        .await;

    // Assert
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.body["issuer_keys_fetched"], false);
    refused.assert_problem(503);
    assert_eq!(ready.status, 200, "ready by itself once the JWKS answers");
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}
