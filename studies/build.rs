//! Records the git commit the binary was built from, for the study manifests ("git commit
//! if known"): `OCCUPA_GIT_COMMIT` if the builder sets it, else `git rev-parse HEAD` when
//! the source is a git checkout; nothing otherwise.

fn main() {
    println!("cargo:rerun-if-env-changed=OCCUPA_GIT_COMMIT");
    if std::env::var_os("OCCUPA_GIT_COMMIT").is_some() {
        return;
    }
    // Rebuild when HEAD moves: a checkout changes HEAD, a commit the branch it names.
    if let Ok(head) = std::fs::read_to_string("../.git/HEAD") {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            let path = format!("../.git/{r}");
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            println!("cargo:rustc-env=OCCUPA_GIT_COMMIT={commit}");
        }
    }
}
