use phonenumber::metadata::DATABASE;
use proptest::prelude::*;

use super::*;

fn at(home: &Home, raw: &str) -> String {
    E164::normalize_at(raw, Some(home)).as_str().to_string()
}

fn berlin() -> Home {
    Home::new("DE", Some("30"), DEFAULT_EXTENSION_MAX_DIGITS).unwrap()
}

#[test]
fn national_local_international_and_extensions_from_a_german_trunk() {
    let home = berlin();
    assert_eq!(at(&home, "030 1234567"), "+49301234567");
    assert_eq!(at(&home, "0301234567"), "+49301234567");
    assert_eq!(at(&home, "1234567"), "+49301234567", "local, in area 30");
    assert_eq!(
        at(&home, "0171 1234567"),
        "+491711234567",
        "mobile, national"
    );
    assert_eq!(
        at(&home, "0049 30 1234567"),
        "+49301234567",
        "international prefix"
    );
    assert_eq!(at(&home, "tel:030-1234567;phone-context=x"), "+49301234567");
    // The vendor's rules for what they cover.
    assert_eq!(at(&home, "2001"), "+2001", "an extension stays one");
    assert_eq!(at(&home, "+1 317 222 2222"), "+13172222222");
    assert_eq!(at(&home, "PrivateNumber"), "+0");
    assert_eq!(at(&home, "sip:bob@example.com"), "+0");
    // Not a valid number at home: as the switch sent it, like without a home.
    assert_eq!(at(&home, "0999"), "+0999");
}

#[test]
fn area_code_with_national_prefix_and_without_area() {
    let with_prefix = Home::new("DE", Some("030"), 4).unwrap();
    assert_eq!(at(&with_prefix, "1234567"), "+49301234567");
    let country_only = Home::new("DE", None, 4).unwrap();
    assert_eq!(at(&country_only, "030 1234567"), "+49301234567");
    let indianapolis = Home::new("US", Some("317"), 4).unwrap();
    assert_eq!(at(&indianapolis, "222-2222"), "+13172222222");
    assert_eq!(at(&indianapolis, "(212) 555-0123"), "+12125550123");
    assert_eq!(at(&indianapolis, "1 212 555 0123"), "+12125550123");
}

#[test]
fn bad_settings_are_refused() {
    assert_eq!(
        Home::new("XX", None, 4),
        Err(HomeError::UnknownCountry("XX".into()))
    );
    assert_eq!(
        Home::new("de", None, 4),
        Err(HomeError::UnknownCountry("de".into()))
    );
    assert_eq!(
        Home::new("DE", Some("3O"), 4),
        Err(HomeError::AreaNotDigits("3O".into()))
    );
    assert_eq!(Home::new("DE", None, 16), Err(HomeError::TooManyDigits(16)));
}

/// Every region's example numbers (fixed line, mobile, toll free) from the library's data,
/// as the region's own national format writes them.
/// Built once: parsing every region's examples takes the library a while.
fn examples() -> &'static [(String, String, String)] {
    static EXAMPLES: std::sync::LazyLock<Vec<(String, String, String)>> =
        std::sync::LazyLock::new(collect_examples);
    &EXAMPLES
}

fn collect_examples() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for meta in DATABASE.iter() {
        let Ok(region) = Id::from_str(meta.id()) else {
            continue; // non-geographic entities (`001`)
        };
        let d = meta.descriptors();
        let kinds = [d.fixed_line(), d.mobile(), d.toll_free()];
        for example in kinds.into_iter().flatten().filter_map(|d| d.example()) {
            let Some(number) = parse(region, example) else {
                continue;
            };
            let e164 = number.format().mode(Mode::E164).to_string();
            let national = number.format().mode(Mode::National).to_string();
            out.push((meta.id().to_string(), national, e164));
        }
    }
    out
}

#[test]
fn every_regions_examples_in_national_format_become_the_librarys_e164() {
    let examples = examples();
    assert!(examples.len() > 400, "{} examples", examples.len());
    let mut wrong = Vec::new();
    for (region, national, e164) in examples {
        let home = Home::new(region, None, 0).unwrap();
        let got = at(&home, national);
        if got != *e164 {
            wrong.push(format!("{region} {national:?}: {got} != {e164}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        examples.len(),
        wrong.join("\n")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The same examples as a switch might write them: any scheme case, separators moved,
    /// SIP host and parameters added; the raw form never matters, only the digits.
    #[test]
    fn examples_survive_how_switches_write_them(
        index in any::<prop::sample::Index>(),
        scheme in prop::sample::select(vec!["", "tel:", "SIP:", "sips:"]),
        separator in prop::sample::select(vec![" ", "-", ".", "/", ""]),
        host in prop::sample::select(vec!["", "@pbx.example.com", ";user=phone"]),
    ) {
        let examples = examples();
        let (region, national, e164) = &examples[index.index(examples.len())];
        let digits: String = national.chars().filter(char::is_ascii_digit).collect();
        let written: Vec<String> = digits.chars().map(String::from).collect();
        let raw = format!("{scheme}{}{host}", written.join(separator));
        let home = Home::new(region, None, 0).unwrap();
        prop_assert_eq!(at(&home, &raw), e164.clone(), "{}", raw);
        // A fixed point, like the vendor's rules.
        prop_assert_eq!(at(&home, e164), e164.clone());
    }
}
