fn main() {
    let code = match airgap_check::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a file name, a zip entry or a container's text: escaped here, the
            // one place it reaches the terminal.
            let text = e.to_string();
            eprintln!(
                "airgap-check: error: {}",
                airgap_check::report::text::terminal_safe(&text)
            );
            e.exit_code()
        }
    };
    std::process::exit(code);
}
