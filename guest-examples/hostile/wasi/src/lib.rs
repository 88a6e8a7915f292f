//! Imports every WASI 0.2 interface wasmtime-wasi has (wit/world.wit) and tries each one in
//! `init`: files, environment, sockets, name lookup, stdin, exit, random numbers, and host
//! resources by the million. `--arg case=NAME` picks one (see `init`); each prints what it
//! got, one line per attempt, so a test can tell a refusal from a success.

mod wasi_bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "hostile:wasi/everything",
        generate_all,
    });
}

use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
use wasi_bindings::wasi;
use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Everything {
    exit_on_event: bool,
    /// Host resources kept alive, so that the host's tables keep them too.
    kept: Vec<wasi::io::poll::Pollable>,
    streams: Vec<wasi::io::streams::OutputStream>,
}

fn fs() {
    let dirs = wasi::filesystem::preopens::get_directories();
    println!("preopens: {}", dirs.len());
    println!("read /etc/shadow: {:?}", std::fs::read("/etc/shadow").map(|b| b.len()).map_err(|e| e.kind()));
    println!("read_dir /: {:?}", std::fs::read_dir("/").map(|_| ()).map_err(|e| e.kind()));
    println!("write /tmp/x: {:?}", std::fs::write("/tmp/wasmprobe-hostile-wasi", b"x").map_err(|e| e.kind()));
}

fn env() {
    println!("environment: {} variables", wasi::cli::environment::get_environment().len());
    println!("arguments: {:?}", wasi::cli::environment::get_arguments());
    println!("cwd: {:?}", wasi::cli::environment::initial_cwd());
}

fn tcp() {
    let net = wasi::sockets::instance_network::instance_network();
    match wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(sock) => {
            let to = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 22, address: (127, 0, 0, 1) });
            println!("tcp connect: {:?}", sock.start_connect(&net, to));
        }
        Err(e) => println!("tcp socket: {e:?}"),
    }
    println!("std tcp connect: {:?}", std::net::TcpStream::connect("127.0.0.1:22").map(|_| ()).map_err(|e| e.kind()));
}

fn udp() {
    match wasi::sockets::udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Ok(_) => println!("udp socket: created"),
        Err(e) => println!("udp socket: {e:?}"),
    }
}

fn dns() {
    let net = wasi::sockets::instance_network::instance_network();
    match wasi::sockets::ip_name_lookup::resolve_addresses(&net, "localhost") {
        Ok(_) => println!("resolve: started"),
        Err(e) => println!("resolve: {e:?}"),
    }
}

fn stdin() {
    let input = wasi::cli::stdin::get_stdin();
    println!("stdin read: {:?}", input.read(1).map(|b| b.len()));
    println!("stdin blocking-read: {:?}", input.blocking_read(1).map(|b| b.len()));
    let mut line = String::new();
    println!("std stdin: {:?}", std::io::stdin().read_line(&mut line).map_err(|e| e.kind()));
    println!("terminal stdin: {}", wasi::cli::terminal_stdin::get_terminal_stdin().is_some());
    println!("terminal stdout: {}", wasi::cli::terminal_stdout::get_terminal_stdout().is_some());
}

fn random(mib: u64, times: u32) {
    let mut total = 0usize;
    for _ in 0..times {
        total += wasi::random::random::get_random_bytes(mib << 20).len();
    }
    println!("random: {total} bytes");
}

impl Plugin for Everything {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        match args.get("case").unwrap_or("all") {
            "fs" => fs(),
            "env" => env(),
            "tcp" => tcp(),
            "udp" => udp(),
            "dns" => dns(),
            "stdin" => stdin(),
            "all" => {
                fs();
                env();
                tcp();
                udp();
                dns();
                stdin();
                random(1, 1);
                println!("insecure seed: {:?}", wasi::random::insecure_seed::insecure_seed().0 != 0);
                println!("wall clock: {}", wasi::clocks::wall_clock::now().seconds > 0);
            }
            // wasi:cli/exit in init, or at the first event.
            "exit-init" => std::process::exit(0),
            "exit-event" => self.exit_on_event = true,
            // The largest random buffer the host will make, `--arg times=N` times.
            "random" => random(args.parse("mib")?.unwrap_or(64), args.parse("times")?.unwrap_or(1)),
            "random-huge" => random(1 << 20, 1),
            // Host resources (timers) by the million: `--arg n=N`, kept alive.
            "pollables" => {
                let n: u64 = args.parse("n")?.unwrap_or(10_000_000);
                for i in 0..n {
                    self.kept.push(wasi::clocks::monotonic_clock::subscribe_duration(u64::MAX));
                    if i % 100_000 == 0 {
                        println!("pollables: {i}");
                    }
                }
                println!("pollables: all {n}");
            }
            // Other host resources by the million: stdout handles, and pollables of stdin.
            "streams" => {
                let n: u64 = args.parse("n")?.unwrap_or(10_000_000);
                for i in 0..n {
                    self.streams.push(wasi::cli::stdout::get_stdout());
                    if i % 100_000 == 0 {
                        println!("streams: {i}");
                    }
                }
                println!("streams: all {n}");
            }
            "subscribe" => {
                let n: u64 = args.parse("n")?.unwrap_or(10_000_000);
                let input = wasi::cli::stdin::get_stdin();
                for i in 0..n {
                    self.kept.push(input.subscribe());
                    if i % 100_000 == 0 {
                        println!("subscribe: {i}");
                    }
                }
                println!("subscribe: all {n}");
            }
            // The same, made and dropped again and again (the host must reuse, not grow).
            "churn" => {
                let n: u64 = args.parse("n")?.unwrap_or(1_000_000);
                for _ in 0..n {
                    drop(wasi::cli::stdout::get_stdout());
                }
                println!("churn: {n}");
            }
            other => return Err(format!("unknown case {other:?}")),
        }
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        if self.exit_on_event {
            std::process::exit(3);
        }
    }
}

wasmprobe_guest::export!(Everything);
