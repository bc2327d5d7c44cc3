fn main() {
    let code = match airgap_check::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airgap-check: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
