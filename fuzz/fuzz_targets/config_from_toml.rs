//! The configuration parser on arbitrary text: `Ok` or a list of errors, never a panic; a
//! valid config renders to TOML that parses again.
#![no_main]

use ici_connector::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => {
            let effective = config.effective_toml();
            assert!(
                toml::from_str::<toml::Table>(&effective).is_ok(),
                "{effective}"
            );
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
