//! The host side of `wit/wasmprobe.wit`, generated once here. Each imported interface is
//! implemented in its own module: [`super::output`], [`super::kernel`], [`super::run`].

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "wasmprobe:plugin/plugin",
});

pub use self::wasmprobe::plugin::types;
