//! Signed checkpoints: the writer's thread reports each new head of the chain, and a
//! thread of its own signs `{replica, file, seq, hash, time}` with Ed25519 every so many
//! records or seconds (and when asked, at a clean shutdown). Each checkpoint is appended
//! to its own file (meant for another volume) and logged, so that log shippers carry it
//! off the machine. Signing never adds an fsync to the request path.
//! Also: key generation, and checking a log against its checkpoints.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::AuditError;
use super::record::now_rfc3339;

/// What a checkpoint vouches for: the record `seq` of `replica`'s chain has `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Checkpoint {
    pub(crate) replica: String,
    /// The log file the record was in when it was signed.
    pub(crate) file: String,
    pub(crate) seq: u64,
    pub(crate) hash: String,
    pub(crate) time: String,
}

/// A checkpoint line: the checkpoint, `"event": "checkpoint"`, and the signature (hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedLine {
    event: String,
    #[serde(flatten)]
    checkpoint: Checkpoint,
    signature: String,
}

impl Checkpoint {
    /// The signed bytes: the checkpoint's canonical JSON (keys sorted, no spaces).
    fn message(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a checkpoint serialises");
        value.to_string().into_bytes()
    }

    fn signed_line(&self, key: &SigningKey) -> String {
        let signature = key.sign(&self.message());
        let line = SignedLine {
            event: "checkpoint".to_owned(),
            checkpoint: self.clone(),
            signature: hex::encode(signature.to_bytes()),
        };
        let value = serde_json::to_value(line).expect("a checkpoint serialises");
        value.to_string()
    }
}

/// The head of the chain after a batch, as the writer reports it.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: String,
    pub(super) file: String,
}

pub(super) enum Note {
    Head(Head),
    /// Sign the latest head now (if it is not signed yet), then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// How the writer's checkpoints are made.
pub(crate) struct CheckpointConfig {
    pub(crate) path: PathBuf,
    pub(crate) key: SigningKey,
    pub(crate) replica: String,
    pub(crate) every_records: u64,
    pub(crate) every_seconds: u64,
}

/// The signing key from a PKCS#8 PEM (as `attrgate audit keygen` writes it).
///
/// # Errors
/// The text is not an Ed25519 private key.
pub(crate) fn signing_key_from_pem(pem: &str) -> Result<SigningKey, String> {
    SigningKey::from_pkcs8_pem(pem.trim())
        .map_err(|error| format!("not an Ed25519 private key in PKCS#8 PEM: {error}"))
}

/// Starts the checkpoint thread; the writer sends it `Note`s.
pub(super) fn spawn(config: CheckpointConfig) -> Result<Sender<Note>, AuditError> {
    let path = config.path.clone();
    let open_error = AuditError::open(&path);
    if let Some(parent) = config.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(&open_error)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&config.path)
        .map_err(&open_error)?;
    cut_torn_tail(&file).map_err(&open_error)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("audit-checkpoint".into())
        .spawn(move || CheckpointThread::new(config, file).run(&receiver))
        .map_err(&open_error)?;
    Ok(sender)
}

/// A checkpoint line cut short (a crash or a full disk mid-write) is removed, so the
/// next checkpoint starts on a line of its own.
fn cut_torn_tail(file: &File) -> std::io::Result<()> {
    use std::io::Read;
    let mut text = Vec::new();
    (&*file).read_to_end(&mut text)?;
    if !text.is_empty() && !text.ends_with(b"\n") {
        let keep = text
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    Ok(())
}

/// The checkpoint thread's state.
struct CheckpointThread {
    config: CheckpointConfig,
    file: File,
    latest: Option<Head>,
    signed_seq: Option<u64>,
    last_signed_at: Instant,
}

impl CheckpointThread {
    fn new(config: CheckpointConfig, file: File) -> Self {
        Self {
            config,
            file,
            latest: None,
            signed_seq: None,
            last_signed_at: Instant::now(),
        }
    }

    fn run(mut self, notes: &Receiver<Note>) {
        let every = Duration::from_secs(self.config.every_seconds);
        loop {
            let wait = every.saturating_sub(self.last_signed_at.elapsed());
            match notes.recv_timeout(wait) {
                Ok(Note::Head(head)) => {
                    let since = self
                        .signed_seq
                        .map_or(head.seq + 1, |signed| head.seq.saturating_sub(signed));
                    self.latest = Some(head);
                    if since >= self.config.every_records {
                        self.sign();
                    }
                }
                Ok(Note::Flush(done)) => {
                    self.sign();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.sign();
                    self.last_signed_at = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.sign();
                    return;
                }
            }
        }
    }

    /// Signs the latest head, unless it is signed already.
    fn sign(&mut self) {
        let Some(head) = self.latest.as_ref() else {
            return;
        };
        if self.signed_seq == Some(head.seq) {
            return;
        }
        let checkpoint = Checkpoint {
            replica: self.config.replica.clone(),
            file: head.file.clone(),
            seq: head.seq,
            hash: head.hash.clone(),
            time: now_rfc3339(),
        };
        let line = checkpoint.signed_line(&self.config.key);
        let before = self.file.metadata().map(|m| m.len());
        let written = self
            .file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.file.sync_data());
        if written.is_err()
            && let Ok(len) = before
        {
            // Leave no partial line behind for the next checkpoint to be glued onto.
            let _ = self.file.set_len(len);
        }
        match written {
            Ok(()) => {
                tracing::info!(target: "attrgate::audit::checkpoint", checkpoint = %line, "audit checkpoint");
                self.signed_seq = Some(head.seq);
                self.last_signed_at = Instant::now();
            }
            Err(error) => {
                tracing::error!(error = %crate::report::chain(&error), seq = head.seq, "the audit checkpoint could not be written");
            }
        }
    }
}

/// Writes a new key pair: the private key (PKCS#8 v1 PEM, mode 0600) and the public key
/// (SubjectPublicKeyInfo PEM). Refuses to overwrite either file.
///
/// # Errors
/// Either file exists or cannot be written.
pub(crate) fn keygen(private: &Path, public: &Path) -> Result<(), String> {
    for path in [private, public] {
        if path.exists() {
            return Err(format!("{} exists; not overwriting it", path.display()));
        }
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let private_pem = private_key_pem(&key)?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("failed to encode the public key: {e}"))?;
    write_new(private, private_pem.as_bytes(), 0o600)?;
    write_new(public, public_pem.as_bytes(), 0o644)
}

/// The private key as PKCS#8 v1 (RFC 8410's `OneAsymmetricKey` without the public key),
/// the form `openssl genpkey` writes. The v2 form with the public key embedded (what
/// `SigningKey::to_pkcs8_pem` writes) is refused by OpenSSL 3.0 and by Python's
/// `cryptography`.
fn private_key_pem(key: &SigningKey) -> Result<Zeroizing<String>, String> {
    KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| format!("failed to encode the private key: {e}"))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("failed to create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// The checkpoints of a checkpoint file that verify under `key`, per replica and seq,
/// with the line each came from.
pub(crate) struct Checkpoints {
    pub(crate) by_replica: BTreeMap<String, BTreeMap<u64, (String, usize)>>,
}

/// Reads and checks a checkpoint file: every signature must verify under `key`, and no
/// two checkpoints of one replica may name different hashes for one seq.
///
/// # Errors
/// The first bad line: unreadable, not a checkpoint, a forged signature, or a fork.
pub(crate) fn read_checkpoints(path: &Path, key: &VerifyingKey) -> Result<Checkpoints, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let mut by_replica: BTreeMap<String, BTreeMap<u64, (String, usize)>> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let at = format!("{}:{number}", path.display());
        let signed: SignedLine =
            serde_json::from_str(line).map_err(|e| format!("{at}: not a checkpoint line: {e}"))?;
        let signature = hex::decode(&signed.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or_else(|| format!("{at}: the signature is not an Ed25519 signature"))?;
        let checkpoint = signed.checkpoint;
        key.verify(&checkpoint.message(), &signature).map_err(|_| {
            format!(
                "{at}: checkpoint seq {} of replica {}: the signature does not verify: forged, or signed with another key",
                checkpoint.seq, checkpoint.replica
            )
        })?;
        let seen = by_replica.entry(checkpoint.replica.clone()).or_default();
        if let Some((hash, first)) = seen.get(&checkpoint.seq)
            && *hash != checkpoint.hash
        {
            return Err(format!(
                "{at}: checkpoint seq {} of replica {} disagrees with line {first}: two different chains were signed (a fork)",
                checkpoint.seq, checkpoint.replica
            ));
        }
        seen.entry(checkpoint.seq)
            .or_insert((checkpoint.hash, number));
    }
    Ok(Checkpoints { by_replica })
}

/// The public key from a SubjectPublicKeyInfo PEM file.
///
/// # Errors
/// The file cannot be read or holds no Ed25519 public key.
pub(crate) fn read_public_key(path: &Path) -> Result<VerifyingKey, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("{}: not an Ed25519 public key: {e}", path.display()))
}

/// Whether `record` (a verified log record) is a checkpoint's subject, and agrees with it.
///
/// # Errors
/// The record at a checkpointed seq has another hash: the log was rewritten.
pub(crate) fn check_record(
    checkpoints: &BTreeMap<u64, (String, usize)>,
    replica: &str,
    seq: u64,
    hash: &str,
    checkpoint_file: &Path,
) -> Result<(), String> {
    match checkpoints.get(&seq) {
        Some((signed, line)) if signed != hash => Err(format!(
            "{}:{line}: checkpoint seq {seq} of replica {replica}: the record at seq {seq} has another hash: the log was rewritten before this checkpoint",
            checkpoint_file.display()
        )),
        _ => Ok(()),
    }
}

/// The replica a record names (`""` for records from before replicas were named).
pub(crate) fn replica_of(record: &Value) -> &str {
    record
        .get("replica")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn checkpoint(seq: u64, hash: &str) -> Checkpoint {
        Checkpoint {
            replica: "r1".into(),
            file: "audit.jsonl".into(),
            seq,
            hash: hash.into(),
            time: "2026-11-27T00:00:00Z".into(),
        }
    }

    fn file_with(lines: &[String]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ckpt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoints.jsonl");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    #[test]
    fn the_private_key_is_written_as_pkcs8_v1_without_the_public_key_and_reads_back() {
        // Arrange: RFC 8410's example shape: SEQUENCE { INTEGER 0, AlgorithmIdentifier
        // { 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }: 48 bytes.
        let v1_prefix = "302e020100300506032b657004220420";

        // Act
        let pem = private_key_pem(&key()).unwrap();

        // Assert
        let (label, der) =
            ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        assert_eq!(der.len(), 48, "no public key embedded");
        assert_eq!(hex::encode(&der[..16]), v1_prefix);
        assert_eq!(
            signing_key_from_pem(&pem).unwrap().to_bytes(),
            key().to_bytes()
        );
    }

    #[test]
    fn a_pkcs8_v2_private_key_from_an_older_keygen_still_loads() {
        // Arrange: the form keygen wrote before, with the public key embedded.
        let v2 = key().to_pkcs8_pem(LineEnding::LF).unwrap();

        // Act
        let loaded = signing_key_from_pem(&v2);

        // Assert
        assert_eq!(loaded.unwrap().to_bytes(), key().to_bytes());
    }

    #[test]
    fn signed_checkpoints_verify_and_a_forged_one_does_not() {
        // Arrange
        let good = checkpoint(3, "aa").signed_line(&key());
        let forged = checkpoint(4, "bb").signed_line(&SigningKey::from_bytes(&[9; 32]));

        // Act
        let ok = read_checkpoints(
            &file_with(std::slice::from_ref(&good)),
            &key().verifying_key(),
        );
        let bad = read_checkpoints(&file_with(&[good, forged]), &key().verifying_key());

        // Assert
        assert_eq!(ok.unwrap().by_replica["r1"][&3].0, "aa");
        let error = bad.err().unwrap();
        assert!(error.contains(":2: checkpoint seq 4"), "{error}");
        assert!(error.contains("does not verify"), "{error}");
    }

    #[test]
    fn two_checkpoints_of_one_seq_that_disagree_are_a_fork() {
        // Arrange
        let one = checkpoint(5, "aa").signed_line(&key());
        let other = checkpoint(5, "cc").signed_line(&key());

        // Act
        let error = read_checkpoints(&file_with(&[one, other]), &key().verifying_key())
            .err()
            .unwrap();

        // Assert
        assert!(error.contains("fork"), "{error}");
    }

    #[test]
    fn an_edited_checkpoint_no_longer_verifies() {
        // Arrange
        let line = checkpoint(3, "aa")
            .signed_line(&key())
            .replace("\"aa\"", "\"ab\"");

        // Act
        let error = read_checkpoints(&file_with(&[line]), &key().verifying_key())
            .err()
            .unwrap();

        // Assert
        assert!(error.contains("does not verify"), "{error}");
    }

    #[test]
    fn a_checkpoint_line_cut_short_is_removed_when_the_signer_starts() {
        // Arrange
        let good = checkpoint(1, "aa").signed_line(&key());
        let path = file_with(std::slice::from_ref(&good));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\":\"checkp");
        std::fs::write(&path, text).unwrap();

        // Act
        let sender = spawn(CheckpointConfig {
            path: path.clone(),
            key: key(),
            replica: "r1".into(),
            every_records: 1,
            every_seconds: 3600,
        })
        .unwrap();
        sender
            .send(Note::Head(Head {
                seq: 2,
                hash: "bb".into(),
                file: "audit.jsonl".into(),
            }))
            .unwrap();
        let (done, wait) = tokio::sync::oneshot::channel();
        sender.send(Note::Flush(done)).unwrap();
        wait.blocking_recv().unwrap();

        // Assert
        let checkpoints = read_checkpoints(&path, &key().verifying_key()).unwrap();
        let seqs: Vec<u64> = checkpoints.by_replica["r1"].keys().copied().collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn the_signer_checkpoints_every_n_records_and_on_flush() {
        // Arrange
        let path = file_with(&[]);
        std::fs::write(&path, "").unwrap();
        let sender = spawn(CheckpointConfig {
            path: path.clone(),
            key: key(),
            replica: "r1".into(),
            every_records: 2,
            every_seconds: 3600,
        })
        .unwrap();
        let head = |seq: u64| {
            Note::Head(Head {
                seq,
                hash: format!("h{seq}"),
                file: "audit.jsonl".into(),
            })
        };

        // Act
        for seq in 0..5 {
            sender.send(head(seq)).unwrap();
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        sender.send(Note::Flush(done)).unwrap();
        wait.blocking_recv().unwrap();

        // Assert
        let checkpoints = read_checkpoints(&path, &key().verifying_key()).unwrap();
        let seqs: Vec<u64> = checkpoints.by_replica["r1"].keys().copied().collect();
        assert_eq!(seqs, [1, 3, 4]);
    }
}
