//! Components no node can load, written in the component text format: the
//! four hooks exported under their names with the wrong types, and the
//! same importing an interface the plugin world does not have.

/// The hooks, lifted from a core module's functions of the wrong types.
const HOOKS: &str = r#"
    (core module $m
        (func (export "none"))
        (func (export "one") (param i32)))
    (core instance $i (instantiate $m))
    (func (export "describe") (canon lift (core func $i "none")))
    (func (export "on-request") (param "r" u32) (canon lift (core func $i "one")))
    (func (export "on-response") (param "r" u32) (canon lift (core func $i "one")))
    (func (export "on-log") (canon lift (core func $i "none")))"#;

/// Right names, wrong types.
pub fn wrong_types() -> Vec<u8> {
    wat::parse_str(format!("(component {HOOKS})")).expect("valid WAT")
}

/// Importing `gatehouse:plugin/extra@0.1.0`, which no node provides.
pub fn foreign_import() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component (import "gatehouse:plugin/extra@0.1.0" (instance)) {HOOKS})"#
    ))
    .expect("valid WAT")
}
