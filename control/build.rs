//! Rebuilds the control plane when a migration is added or changed: the
//! migrations are embedded by `sqlx::migrate!`, which cargo cannot see.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
