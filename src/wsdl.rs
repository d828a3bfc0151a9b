//! WSDL 1.1 documents generated from the operation catalog, one per ICI interface.
//!
//! The shape is chosen for the toolkits SAP's side and our tests use (INTEROP.md):
//! rpc/literal, everything below the operation element unqualified, arrays as
//! `ArrayOf<T>` complex types with a sequence of `item` elements (never `soapenc:Array`,
//! which would make zeep fetch the SOAP-encoding schema from the internet), every structure
//! field optional and nillable. The same catalog drives the dispatcher, so the WSDL cannot
//! promise an operation or a field the server does not know.
//!
//! The generated files are checked in under `wsdl/` (location `http://localhost:8080/`);
//! a unit test keeps them equal to [`generate`] and rewrites them with `ICI_UPDATE_WSDL=1`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::ici::catalog::{self, Interface, OpSpec, TYPES, Ty};

/// `Content-Type` for a WSDL document.
pub const WSDL_CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// `Content-Type` for [`index`].
pub const INDEX_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The SOAPAction URI of an interface's operations, in the shape SAP sends
/// (`http://inqmy.com/soapdispatcher/rpc/bcbici/IciUserBean`). Advisory only: the server
/// dispatches on the body, never on this value.
pub fn soap_action(interface: Interface) -> String {
    let name = interface.name();
    let stem = name.strip_suffix("Interface").unwrap_or(name);
    format!("http://inqmy.com/soapdispatcher/rpc/bcbici/{stem}Bean")
}

/// The WSDL 1.1 document of one interface, with every type it needs and one service whose
/// port answers at `location`.
///
/// SAP-facing interfaces declare the `user` and `language` SOAP headers (global elements in
/// the interface namespace, as SAP sends them) on every input; clients may omit them. The
/// event interface (implemented by SAP, called by us) declares none.
pub fn generate(interface: Interface, location: &str) -> String {
    let name = interface.name();
    let ns = interface.namespace();
    let ops: Vec<&OpSpec> = catalog::operations(interface).collect();
    let headers = interface != Interface::Event;
    let action = soap_action(interface);

    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<wsdl:definitions name=\"{name}\" targetNamespace=\"{ns}\"\n    \
         xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"\n    \
         xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"\n    \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"\n    \
         xmlns:tns=\"{ns}\">"
    );
    let _ = writeln!(
        out,
        "  <wsdl:documentation>{}</wsdl:documentation>",
        escape(interface_doc(interface))
    );

    write_types(&mut out, interface, &ops, headers);
    write_messages(&mut out, &ops, headers);

    let _ = writeln!(out, "  <wsdl:portType name=\"{name}\">");
    for op in &ops {
        let _ = writeln!(out, "    <wsdl:operation name=\"{}\">", op.name);
        let _ = writeln!(
            out,
            "      <wsdl:documentation>{}</wsdl:documentation>",
            escape(op.doc)
        );
        let _ = writeln!(
            out,
            "      <wsdl:input message=\"tns:{}Request\"/>",
            op.name
        );
        let _ = writeln!(
            out,
            "      <wsdl:output message=\"tns:{}Response\"/>",
            op.name
        );
        out.push_str("    </wsdl:operation>\n");
    }
    out.push_str("  </wsdl:portType>\n");

    let _ = writeln!(
        out,
        "  <wsdl:binding name=\"{name}Binding\" type=\"tns:{name}\">"
    );
    out.push_str(
        "    <soap:binding style=\"rpc\" transport=\"http://schemas.xmlsoap.org/soap/http\"/>\n",
    );
    for op in &ops {
        let _ = writeln!(out, "    <wsdl:operation name=\"{}\">", op.name);
        let _ = writeln!(
            out,
            "      <soap:operation soapAction=\"{action}\" style=\"rpc\"/>"
        );
        out.push_str("      <wsdl:input>\n");
        let _ = writeln!(
            out,
            "        <soap:body use=\"literal\" namespace=\"{ns}\"/>"
        );
        if headers {
            for part in ["user", "language"] {
                let _ = writeln!(
                    out,
                    "        <soap:header message=\"tns:Headers\" part=\"{part}\" use=\"literal\"/>"
                );
            }
        }
        out.push_str("      </wsdl:input>\n      <wsdl:output>\n");
        let _ = writeln!(
            out,
            "        <soap:body use=\"literal\" namespace=\"{ns}\"/>"
        );
        out.push_str("      </wsdl:output>\n    </wsdl:operation>\n");
    }
    out.push_str("  </wsdl:binding>\n");

    let _ = writeln!(out, "  <wsdl:service name=\"{name}Service\">");
    let _ = writeln!(
        out,
        "    <wsdl:port name=\"{name}Port\" binding=\"tns:{name}Binding\">"
    );
    let _ = writeln!(
        out,
        "      <soap:address location=\"{}\"/>",
        escape(location)
    );
    out.push_str("    </wsdl:port>\n  </wsdl:service>\n</wsdl:definitions>\n");
    out
}

fn interface_doc(interface: Interface) -> &'static str {
    match interface {
        Interface::System => "ICI system interface: product information and capabilities.",
        Interface::User => "ICI user interface: agent attributes, workmodes and subscriptions.",
        Interface::Container => "ICI container interface: event subscriptions per address.",
        Interface::Item => "ICI item interface: items (interactions) and their attached data.",
        Interface::Line => "ICI line interface: the live calls of an address or agent.",
        Interface::PhoneCall => "ICI phone call interface: call control.",
        Interface::Folder => "ICI folder interface: messages (no mail channel here).",
        Interface::Event => {
            "ICI event interface: implemented by SAP, called by the connector to push events."
        }
    }
}

/// The XSD type a catalog type is declared with.
fn xsd_type(ty: Ty) -> String {
    match ty {
        Ty::String => "xsd:string".to_string(),
        Ty::Int => "xsd:int".to_string(),
        Ty::Boolean => "xsd:boolean".to_string(),
        Ty::StringList => "tns:ArrayOfString".to_string(),
        Ty::Struct(name) => format!("tns:{name}"),
        Ty::ListOf(name) => format!("tns:ArrayOf{name}"),
    }
}

/// The complex types an interface needs: structures by name and arrays by element type.
#[derive(Default)]
struct Needed {
    string_list: bool,
    structs: BTreeSet<&'static str>,
    lists: BTreeSet<&'static str>,
}

impl Needed {
    fn add(&mut self, ty: Ty) {
        match ty {
            Ty::String | Ty::Int | Ty::Boolean => {}
            Ty::StringList => self.string_list = true,
            Ty::Struct(name) => self.add_struct(name),
            Ty::ListOf(name) => {
                self.lists.insert(name);
                self.add_struct(name);
            }
        }
    }

    fn add_struct(&mut self, name: &'static str) {
        if self.structs.insert(name)
            && let Some(spec) = catalog::type_spec(name)
        {
            for (_, ty) in spec.fields {
                self.add(*ty);
            }
        }
    }
}

fn write_types(out: &mut String, interface: Interface, ops: &[&OpSpec], headers: bool) {
    let mut needed = Needed::default();
    for op in ops {
        for param in op.params {
            needed.add(param.ty);
        }
        if let Some(ty) = op.returns {
            needed.add(ty);
        }
    }

    out.push_str("  <wsdl:types>\n");
    // The schema repeats the namespace declarations it uses, so that a tool that lifts it
    // out of the WSDL still reads it.
    let _ = writeln!(
        out,
        "    <xsd:schema xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:tns=\"{ns}\" \
         targetNamespace=\"{ns}\" elementFormDefault=\"unqualified\">",
        ns = interface.namespace()
    );
    if headers {
        out.push_str("      <xsd:element name=\"user\" type=\"xsd:string\"/>\n");
        out.push_str("      <xsd:element name=\"language\" type=\"xsd:string\"/>\n");
    }
    if needed.string_list {
        write_array(out, "String", "xsd:string");
    }
    // Catalog order, so the documents read like the catalog and stay stable.
    for spec in TYPES {
        if needed.structs.contains(spec.name) {
            let _ = writeln!(out, "      <xsd:complexType name=\"{}\">", spec.name);
            out.push_str("        <xsd:sequence>\n");
            for (field, ty) in spec.fields {
                let _ = writeln!(
                    out,
                    "          <xsd:element name=\"{field}\" type=\"{}\" minOccurs=\"0\" nillable=\"true\"/>",
                    xsd_type(*ty)
                );
            }
            out.push_str("        </xsd:sequence>\n      </xsd:complexType>\n");
        }
        if needed.lists.contains(spec.name) {
            write_array(out, spec.name, &format!("tns:{}", spec.name));
        }
    }
    out.push_str("    </xsd:schema>\n  </wsdl:types>\n");
}

fn write_array(out: &mut String, name: &str, item_type: &str) {
    let _ = writeln!(out, "      <xsd:complexType name=\"ArrayOf{name}\">");
    out.push_str("        <xsd:sequence>\n");
    let _ = writeln!(
        out,
        "          <xsd:element name=\"item\" type=\"{item_type}\" minOccurs=\"0\" maxOccurs=\"unbounded\" nillable=\"true\"/>"
    );
    out.push_str("        </xsd:sequence>\n      </xsd:complexType>\n");
}

fn write_messages(out: &mut String, ops: &[&OpSpec], headers: bool) {
    if headers {
        out.push_str("  <wsdl:message name=\"Headers\">\n");
        out.push_str("    <wsdl:part name=\"user\" element=\"tns:user\"/>\n");
        out.push_str("    <wsdl:part name=\"language\" element=\"tns:language\"/>\n");
        out.push_str("  </wsdl:message>\n");
    }
    for op in ops {
        let _ = writeln!(out, "  <wsdl:message name=\"{}Request\">", op.name);
        for param in op.params {
            // rpc parts cannot be optional; optional parameters may simply be left out.
            let _ = writeln!(
                out,
                "    <wsdl:part name=\"{}\" type=\"{}\"/>",
                param.name,
                xsd_type(param.ty)
            );
        }
        out.push_str("  </wsdl:message>\n");
        match op.returns {
            Some(ty) => {
                let _ = writeln!(out, "  <wsdl:message name=\"{}Response\">", op.name);
                let _ = writeln!(
                    out,
                    "    <wsdl:part name=\"return\" type=\"{}\"/>",
                    xsd_type(ty)
                );
                out.push_str("  </wsdl:message>\n");
            }
            None => {
                let _ = writeln!(out, "  <wsdl:message name=\"{}Response\"/>", op.name);
            }
        }
    }
}

/// Whether a query string asks for a WSDL document at all: it has a `wsdl` key (any case,
/// with or without a value: `?wsdl`, `?WSDL`, `?wsdl=User`).
pub fn is_wsdl_query(query: &str) -> bool {
    query_pairs(query).any(|(key, _)| key.eq_ignore_ascii_case("wsdl"))
}

/// The interface whose WSDL a `GET <path>?<query>` asks for: the value of `wsdl=`
/// (`User`, `IciUserInterface`, any case), else the last path segment if it names an
/// interface (`/IciUserInterface?wsdl`, also with a `.wsdl` suffix). `None` means no
/// interface is named (or an unknown one): answer with [`index`].
pub fn interface_for_request(path: &str, query: &str) -> Option<Interface> {
    let named = query_pairs(query)
        .find(|(key, value)| key.eq_ignore_ascii_case("wsdl") && !value.is_empty())
        .map(|(_, value)| value);
    if let Some(value) = named {
        return Interface::from_name(value);
    }
    let segment = path.trim_end_matches('/').rsplit('/').next()?;
    let segment = match segment.len().checked_sub(".wsdl".len()) {
        Some(cut)
            if segment.is_char_boundary(cut) && segment[cut..].eq_ignore_ascii_case(".wsdl") =>
        {
            &segment[..cut]
        }
        _ => segment,
    };
    Interface::from_name(segment)
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// A short HTML page listing the WSDL of every interface as `<base_url>?wsdl=<Name>`,
/// served for `?wsdl` requests that name no interface ([`INDEX_CONTENT_TYPE`]).
pub fn index(base_url: &str) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ICI WSDL</title></head>\n\
         <body>\n<h1>ICI interfaces</h1>\n<ul>\n",
    );
    for interface in Interface::ALL {
        let url = format!("{base_url}?wsdl={}", interface.name());
        let role = if interface == Interface::Event {
            " (implemented by SAP; the connector calls it)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<li><a href=\"{}\">{}</a>{role}</li>",
            escape(url.as_str()),
            interface.name()
        );
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use quick_xml::XmlVersion;
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    use quick_xml::reader::NsReader;

    use super::*;

    const CHECKED_IN_LOCATION: &str = "http://localhost:8080/";
    const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn checked_in_path(interface: Interface) -> PathBuf {
        root()
            .join("wsdl")
            .join(format!("{}.wsdl", interface.name()))
    }

    /// Reads the whole document with namespace resolution; panics on any XML error.
    /// Returns (namespace, local name, `name` attribute) of every element.
    fn elements(doc: &str) -> Vec<(String, String, Option<String>)> {
        let mut reader = NsReader::from_str(doc);
        reader.config_mut().check_end_names = true;
        let mut found = Vec::new();
        let mut depth = 0usize;
        loop {
            let (resolved, event) = reader
                .read_resolved_event()
                .unwrap_or_else(|e| panic!("not well-formed: {e}"));
            let ns = match resolved {
                ResolveResult::Bound(ns) => ns.as_ref().to_string(),
                ResolveResult::Unbound => String::new(),
                ResolveResult::Unknown(prefix) => panic!("unbound prefix {prefix}"),
            };
            let is_start = matches!(event, Event::Start(_));
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    let name = e.try_get_attribute("name").unwrap().map(|a| {
                        a.normalized_value(XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned()
                    });
                    let local = e.local_name().as_ref().to_string();
                    found.push((ns, local, name));
                    if is_start {
                        depth += 1;
                    }
                }
                Event::End(_) => depth -= 1,
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0, "unclosed elements");
        found
    }

    #[test]
    fn checked_in_files_are_current() {
        let update = std::env::var_os("ICI_UPDATE_WSDL").is_some_and(|v| v == "1");
        for interface in Interface::ALL {
            let path = checked_in_path(interface);
            let generated = generate(interface, CHECKED_IN_LOCATION);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == generated,
                "{} differs from wsdl::generate(); run `ICI_UPDATE_WSDL=1 cargo test wsdl` \
                 to rewrite the checked-in WSDL files, then review and commit them",
                path.display()
            );
        }
    }

    #[test]
    fn every_operation_appears_in_port_type_binding_and_messages() {
        for interface in Interface::ALL {
            let doc = generate(interface, CHECKED_IN_LOCATION);
            let found = elements(&doc);
            let named = |local: &str| -> Vec<String> {
                found
                    .iter()
                    .filter(|(ns, l, _)| ns == WSDL_NS && l == local)
                    .filter_map(|(_, _, n)| n.clone())
                    .collect()
            };
            let operations = named("operation");
            let messages = named("message");
            for op in catalog::operations(interface) {
                let count = operations.iter().filter(|n| *n == op.name).count();
                assert_eq!(
                    count,
                    2,
                    "{}: portType and binding need {}",
                    interface.name(),
                    op.name
                );
                for suffix in ["Request", "Response"] {
                    let message = format!("{}{suffix}", op.name);
                    assert!(messages.contains(&message), "{message} missing");
                }
            }
            assert_eq!(operations.len(), 2 * catalog::operations(interface).count());
        }
    }

    #[test]
    fn every_referenced_type_is_declared() {
        for interface in Interface::ALL {
            let doc = generate(interface, CHECKED_IN_LOCATION);
            let declared: Vec<String> = elements(&doc)
                .into_iter()
                .filter(|(_, local, _)| local == "complexType")
                .filter_map(|(_, _, name)| name)
                .collect();
            let typed = doc
                .lines()
                .filter(|l| l.contains("<xsd:element") || l.contains("<wsdl:part"));
            for reference in typed.flat_map(|l| l.split("type=\"tns:").skip(1)) {
                let name = &reference[..reference.find('"').unwrap()];
                assert!(
                    declared.iter().any(|d| d == name),
                    "{}: tns:{name} is not declared",
                    interface.name()
                );
            }
            let unique: BTreeSet<&String> = declared.iter().collect();
            assert_eq!(unique.len(), declared.len(), "a type is declared twice");
        }
    }

    #[test]
    fn shapes_match_the_wire() {
        let user = generate(Interface::User, "http://ici.example:8080/ici?a=1&b=2");
        assert!(user.contains(r#"<soap:binding style="rpc""#));
        assert!(user.contains(r#"<soap:body use="literal" namespace="urn:IciUserInterface"/>"#));
        assert!(
            user.contains(r#"soapAction="http://inqmy.com/soapdispatcher/rpc/bcbici/IciUserBean""#)
        );
        assert!(
            user.contains(r#"<soap:address location="http://ici.example:8080/ici?a=1&amp;b=2"/>"#)
        );
        assert!(user.contains(
            r#"<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:IciUserInterface" targetNamespace="urn:IciUserInterface" elementFormDefault="unqualified">"#
        ));
        assert!(user.contains(r#"<soap:header message="tns:Headers" part="user" use="literal"/>"#));
        assert!(user.contains(
            r#"<xsd:element name="currentWorkmode" type="xsd:int" minOccurs="0" nillable="true"/>"#
        ));
        assert!(user.contains(r#"<xsd:complexType name="ArrayOfWorkmode">"#));
        assert!(user.contains(r#"<wsdl:part name="return" type="tns:UserAttributes"/>"#));
        assert!(user.contains(r#"<wsdl:message name="setCurrentWorkmodeResponse"/>"#));
        assert!(!user.contains("soapenc") && !user.contains("encoding/"));
        // Only what the interface needs.
        assert!(!user.contains("PhoneCall"));

        let event = generate(Interface::Event, CHECKED_IN_LOCATION);
        assert!(!event.contains("soap:header"));
        assert!(event.contains(r#"<wsdl:part name="phoneCall" type="tns:PhoneCall"/>"#));
        assert!(event.contains(r#"<wsdl:part name="appIds" type="tns:ArrayOfString"/>"#));
        assert!(event.contains("IciEventBean"));
    }

    #[test]
    fn which_wsdl_a_request_names() {
        use Interface::*;
        assert_eq!(interface_for_request("/", "wsdl=User"), Some(User));
        assert_eq!(
            interface_for_request("/", "WSDL=iciuserinterface"),
            Some(User)
        );
        assert_eq!(
            interface_for_request("/x", "a=b&wsdl=PhoneCall"),
            Some(PhoneCall)
        );
        assert_eq!(
            interface_for_request("/IciUserInterface", "wsdl"),
            Some(User)
        );
        assert_eq!(
            interface_for_request("/ici/IciSystemInterface/", "wsdl"),
            Some(System)
        );
        assert_eq!(
            interface_for_request("/IciEventInterface.wsdl", ""),
            Some(Event)
        );
        // The query wins over the path.
        assert_eq!(
            interface_for_request("/IciUserInterface", "wsdl=Item"),
            Some(Item)
        );
        assert_eq!(interface_for_request("/", "wsdl"), None);
        assert_eq!(interface_for_request("/", "wsdl=nope"), None);
        assert_eq!(
            interface_for_request("/SapIciWebConnector/IcSapWebService.asmx", "WSDL"),
            None
        );
        assert_eq!(interface_for_request("", ""), None);
        assert_eq!(interface_for_request("/é.wsdl", ""), None);

        assert!(is_wsdl_query("wsdl") && is_wsdl_query("WSDL") && is_wsdl_query("x=1&wsdl=User"));
        assert!(!is_wsdl_query("") && !is_wsdl_query("wsdlx=1"));
    }

    #[test]
    fn index_links_every_interface() {
        let page = index("http://h:1/");
        for interface in Interface::ALL {
            let link = format!("href=\"http://h:1/?wsdl={}\"", interface.name());
            assert!(page.contains(&link), "{link} missing");
        }
        elements(
            &page
                .replace("<!DOCTYPE html>\n", "")
                .replace("<meta charset=\"utf-8\">", ""),
        );
    }

    /// `ICI_XMLLINT` (set by scripts/test.sh), else `xmllint` on the PATH.
    fn xmllint() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os("ICI_XMLLINT").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let found = Command::new("xmllint").arg("--version").output().is_ok();
        found.then(|| PathBuf::from("xmllint"))
    }

    #[test]
    fn generated_wsdl_is_valid_wsdl_1_1() {
        let Some(xmllint) = xmllint() else {
            eprintln!("SKIPPED: xmllint not found; scripts/test.sh installs it");
            return;
        };
        let schemas = root().join("tests/schemas");
        let dir = tempfile::tempdir().unwrap();
        for interface in Interface::ALL {
            let file = dir.path().join(format!("{}.wsdl", interface.name()));
            std::fs::write(&file, generate(interface, CHECKED_IN_LOCATION)).unwrap();
            // wsdl.xsd alone checks the WSDL structure; the wrapper adds the SOAP binding
            // extensions (soap:binding, soap:body, soap:header, soap:address).
            for schema in ["wsdl.xsd", "wsdl-with-soap-binding.xsd"] {
                let output = Command::new(&xmllint)
                    .arg("--noout")
                    .arg("--nonet")
                    .arg("--schema")
                    .arg(schemas.join(schema))
                    .arg(&file)
                    .output()
                    .unwrap_or_else(|e| panic!("running {}: {e}", xmllint.display()));
                assert!(
                    output.status.success(),
                    "{} is not valid against {schema}:\n{}",
                    interface.name(),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }

    /// Loads every checked-in WSDL with zeep and suds (offline), when scripts/test.sh
    /// has set up `ICI_PYTHON`.
    #[test]
    fn toolkits_load_the_checked_in_wsdl() {
        let Some(python) = std::env::var_os("ICI_PYTHON").filter(|p| !p.is_empty()) else {
            eprintln!("SKIPPED: ICI_PYTHON not set; run scripts/test.sh");
            return;
        };
        let output = Command::new(&python)
            .arg(root().join("tests/interop/load_wsdl.py"))
            .arg(root().join("wsdl"))
            .output()
            .unwrap_or_else(|e| panic!("running {python:?}: {e}"));
        assert!(
            output.status.success(),
            "load_wsdl.py failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
