//! The empty WASI context plugins get, built on a plugin's first WASI call.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::HostState;

/// WASI as plugins get it: no environment, arguments, files, sockets or
/// name lookups; stdin closed, stdout and stderr discarded; clocks and
/// random from the host (language runtimes need them).
pub(super) struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl Wasi {
    pub(super) fn empty() -> Box<Self> {
        let ctx = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Box::new(Self {
            ctx,
            table: ResourceTable::new(),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(Wasi::empty);
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}
