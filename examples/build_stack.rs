//! `cargo run --example build_stack`: build the fixture stack image the demo and the tests use
//! (fixtures/stack, busybox FROM scratch; no registry needed).

#[path = "../tests/integration/support/stack.rs"]
mod stack;

fn main() {
    match stack::build_stack() {
        Ok(()) => println!("built {}", stack::STACK_IMAGE),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(3);
        }
    }
}
