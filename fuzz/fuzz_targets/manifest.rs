//! Arbitrary manifest text: parsing and translating never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = translate::manifest::parse(text) {
        let set: translate::ResourceSet = parsed.objects.into_iter().collect();
        let _ = translate::translate(&set, &translate::Options::default());
    }
});
