//! What `wasmtime::component::bindgen!` generates from `wit/process.wit`:
//! the kernel interface the node implements (`host.rs`) and the WIT records
//! the message path mirrors (`abi.rs`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "process",
    exports: { default: async },
    // Durable state waits for the group commit (`state::commit`): the
    // process task yields meanwhile, so one flush covers many writers.
    imports: {
        "hearth:process/kernel/set-state": async,
        "hearth:process/kernel/clear-state": async,
        // Reads and compiles a component on the blocking pool.
        "hearth:process/kernel/spawn": async,
    },
});

pub use self::hearth::process::types as wit;
