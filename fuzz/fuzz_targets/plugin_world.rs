//! Plugin upload validation against components of other worlds, not only
//! bytes: wit-smith makes a random WIT package and wit-component a real
//! component for each of its worlds (a dummy core module lifted and
//! lowered as the world says). Each must be refused with a reason, never a
//! panic: no random world is the `gatehouse:plugin` world a node links.
#![no_main]

use gatehouse_protocol::plugin_check::check;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use wit_component::{ComponentEncoder, DecodedWasm, StringEncoding};

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let config: wit_smith::Config = u.arbitrary()?;
    let package = wit_smith::smith(&config, u)?;
    let Ok(DecodedWasm::WitPackage(resolve, _)) = wit_component::decode(&package) else {
        return Ok(());
    };
    // A few worlds each, to keep every run fast.
    for (world, _) in resolve.worlds.iter().take(4) {
        let mut module =
            wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
        if wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            StringEncoding::UTF8,
        )
        .is_err()
        {
            continue;
        }
        let Ok(component) = ComponentEncoder::default()
            .module(&module)
            .and_then(|mut encoder| encoder.encode())
        else {
            continue;
        };
        assert!(
            check(&component).is_err(),
            "a component of a random world was accepted"
        );
    }
    Ok(())
}
