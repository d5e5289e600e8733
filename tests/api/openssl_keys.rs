//! Checkpoint keys that other tools read and write: `attrgate audit keygen`'s private key
//! through the real `openssl` command (OpenSSL 3) and Python's `cryptography`, and a
//! key from `openssl genpkey` signing the checkpoints of a gateway process. A missing
//! `openssl` or `.venv` fails these tests: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::checkpoints::{keygen, path, signed_gateway, text, updates};
use crate::helpers::temp_dir;

/// `openssl ARGS...`; panics, saying what to install, when there is no `openssl`.
fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().unwrap_or_else(|error| {
        panic!("failed to run `openssl` ({error}): these tests need OpenSSL 3 on PATH (apt-get install openssl)")
    })
}

/// The interpreter of the repo's `.venv`, where `scripts/bootstrap-python` installs
/// `cryptography`.
fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: run scripts/bootstrap-python",
        python.display()
    );
    python
}

/// The public key OpenSSL derives from a private key file, as SPKI PEM.
fn openssl_public_pem(private: &Path) -> String {
    let output = openssl(&["pkey", "-in", path(private), "-pubout"]);
    assert!(output.status.success(), "openssl pkey: {}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn openssl_reads_the_keygen_private_key_and_derives_the_keygen_public_key() {
    // Arrange
    let dir = temp_dir();
    let (_, public) = keygen(&dir, "signing");

    // Act
    let derived = openssl_public_pem(&dir.join("signing.key"));

    // Assert
    assert_eq!(derived, std::fs::read_to_string(public).unwrap());
}

#[test]
fn openssl_sees_the_keygen_private_key_as_ed25519() {
    // Arrange
    let dir = temp_dir();
    keygen(&dir, "signing");

    // Act
    let output = openssl(&[
        "pkey",
        "-in",
        path(&dir.join("signing.key")),
        "-noout",
        "-text",
    ]);

    // Assert
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("ED25519 Private-Key"), "{shown}");
}

#[test]
fn python_cryptography_loads_the_keygen_private_key_and_derives_the_keygen_public_key() {
    // Arrange
    let dir = temp_dir();
    let (_, public) = keygen(&dir, "signing");
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        key = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
        print(key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode(), end='')\n";

    // Act
    let output = Command::new(venv_python())
        .args(["-c", script, path(&dir.join("signing.key"))])
        .output()
        .unwrap();

    // Assert
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        std::fs::read_to_string(public).unwrap()
    );
}

#[tokio::test]
async fn checkpoints_signed_with_an_openssl_genpkey_key_verify_with_the_public_key_openssl_derives()
{
    // Arrange
    let dir = temp_dir();
    let private = dir.join("openssl.key");
    let public = dir.join("openssl.pub");
    let made = openssl(&["genpkey", "-algorithm", "ed25519", "-out", path(&private)]);
    assert!(made.status.success(), "openssl genpkey: {}", text(&made));
    std::fs::write(&public, openssl_public_pem(&private)).unwrap();
    let key = (std::fs::read_to_string(&private).unwrap(), public);
    let mut signed = signed_gateway(2, "r-openssl", Some(key)).await;
    updates(&signed.gateway, 2).await;
    signed.gateway.stop();

    // Act
    let output = signed.verify_own_log();

    // Assert
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("replica r-openssl: 4 record(s)"), "{shown}");
    assert!(
        shown.contains("checkpoint(s) verified, the last at seq 3"),
        "{shown}"
    );
}
