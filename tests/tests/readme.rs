//! The plugin example of the README and of the guest SDK's README is the real
//! `guest-examples/exec-open` source, which the host's build compiles: the text people copy
//! cannot drift from the code that runs. (The SDK's crate documentation includes the file
//! itself, with `include_str!`.)

const EXEC_OPEN: &str = include_str!("../../guest-examples/exec-open/src/lib.rs");

/// The bodies of the fenced ```` ```rust ```` blocks of a Markdown text.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        match open.as_mut() {
            None if line.trim_end() == "```rust" => open = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(open.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn the_readme_plugin_examples_are_exec_open_as_it_is() {
    for (name, markdown) in [
        ("README.md", include_str!("../../README.md")),
        ("guest-sdk/README.md", include_str!("../../guest-sdk/README.md")),
    ] {
        let examples: Vec<String> =
            rust_blocks(markdown).into_iter().filter(|b| b.contains("wasmprobe_guest::export!")).collect();
        assert_eq!(examples.len(), 1, "{name}: one plugin example");
        if examples[0] != EXEC_OPEN {
            let first = examples[0].lines().zip(EXEC_OPEN.lines()).position(|(a, b)| a != b);
            panic!(
                "{name}: its plugin example is not guest-examples/exec-open/src/lib.rs (first difference at \
                 line {:?} of the example); copy the file into the README",
                first.map(|i| i + 1)
            );
        }
    }
}

#[test]
fn rust_blocks_are_found_and_other_blocks_are_not() {
    let md = "text\n```rust\nfn a() {}\n```\n```sh\nls\n```\n```rust\n//! ```text\n//! x\n//! ```\n```\n";
    assert_eq!(rust_blocks(md), ["fn a() {}\n", "//! ```text\n//! x\n//! ```\n"]);
}
