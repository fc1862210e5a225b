use super::*;

use argon2::password_hash::{PasswordHasher, SaltString};

/// The PHC string of `password` (a fixed salt will do in a test).
fn phc(password: &str) -> String {
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("kaichat-oper-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_hash_file_is_one_argon2id_phc_string() {
    let good = phc("secret");
    let path = file("good", &format!("{good}\n"));
    assert_eq!(load_hash(&path).unwrap(), good);
    let path = file("bad", "secret\n");
    let e = load_hash(&path).unwrap_err();
    assert!(e.contains("does not hold an argon2id PHC string"), "{e}");
    let argon2i = good.replacen("$argon2id$", "$argon2i$", 1);
    let path = file("argon2i", &argon2i);
    let e = load_hash(&path).unwrap_err();
    assert!(e.contains("argon2i hash: an argon2id one is needed"), "{e}");
    let e = load_hash(Path::new("/nonexistent/oper.hash")).unwrap_err();
    assert!(e.contains("cannot read the operator password file"), "{e}");
}

#[test]
fn the_verifier_accepts_the_password_and_refuses_others() {
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let verifier = Verifier::start(phc("secret"), waker).unwrap();
    assert!(verifier.submit(1, 7, b"secret".to_vec().into()));
    assert!(verifier.submit(2, 8, b"Secret".to_vec().into()));
    let mut verdicts = Vec::new();
    while verdicts.len() < 2 {
        verdicts.extend(
            verifier
                .verdicts()
                .map(|v| (v.key, v.generation, v.accepted)),
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(verdicts, [(1, 7, true), (2, 8, false)]);
}
