//! Item attached data on the wire (ICI.md section 6): reading an `<ItemAttachedData>`
//! document into [`AttachedData`], and writing one back.

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::domain::{AttachedData, DomainError};

/// The element every attached data document is wrapped in.
const ROOT: &str = "ItemAttachedData";

/// Parses an `ItemAttachedData` document. Refuses DOCTYPEs, malformed XML and characters
/// XML 1.0 does not allow (raw or as references such as `&#1;`: the document is relayed
/// as it came, and SAP's parser would refuse it); anything at the top level other than
/// `Application` elements is ignored.
pub fn parse(document: &str) -> Result<AttachedData, DomainError> {
    let bad = DomainError::InvalidAttachedData;
    crate::soap::chars::check_fragment(document).map_err(|c| bad(c.to_string()))?;
    let mut reader = Reader::from_str(document);
    reader.config_mut().check_end_names = true;
    let mut data = AttachedData::default();
    let mut depth = 0usize;
    let mut current: Option<(String, usize)> = None;
    let mut last_pos = 0usize;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(start) | Event::Empty(start) if depth == 0 => {
                if saw_root {
                    return Err(bad("more than one root element".into()));
                }
                saw_root = true;
                if start.local_name().into_inner() != ROOT {
                    return Err(bad("root element must be ItemAttachedData".into()));
                }
                if is_start {
                    depth = 1;
                }
            }
            Event::Start(start) => {
                if depth == 1 && start.local_name().into_inner() == "Application" {
                    current = Some((application_id(&start)?, last_pos));
                }
                depth += 1;
            }
            Event::Empty(start)
                if depth == 1 && start.local_name().into_inner() == "Application" =>
            {
                let end = reader.buffer_position() as usize;
                data.set(application_id(&start)?, document[last_pos..end].to_string());
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| bad("unexpected end tag".into()))?;
                if depth == 1
                    && let Some((id, start)) = current.take()
                {
                    let end = reader.buffer_position() as usize;
                    data.set(id, document[start..end].to_string());
                }
            }
            Event::DocType(_) => return Err(bad("DOCTYPE is not allowed".into())),
            Event::Eof => break,
            _ => {}
        }
        last_pos = reader.buffer_position() as usize;
    }
    if !saw_root || depth != 0 {
        return Err(bad("incomplete document".into()));
    }
    Ok(data)
}

/// The document, as getAttachedData and phoneCallChanged carry it.
pub fn document(data: &AttachedData) -> String {
    let len = data.elements().map(str::len).sum::<usize>() + 2 * ROOT.len() + "<></>".len();
    let mut out = String::with_capacity(len);
    out.push('<');
    out.push_str(ROOT);
    out.push('>');
    for element in data.elements() {
        out.push_str(element);
    }
    out.push_str("</");
    out.push_str(ROOT);
    out.push('>');
    out
}

fn application_id(start: &quick_xml::events::BytesStart<'_>) -> Result<String, DomainError> {
    for attr in start.attributes() {
        let attr = attr.map_err(|e| DomainError::InvalidAttachedData(e.to_string()))?;
        if attr.key.local_name().into_inner() == "id" {
            return attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .map_err(|e| DomainError::InvalidAttachedData(e.to_string()));
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAP: &str =
        r#"<Application id="SAP-IC"><CRM_IC><BUPA>0815</BUPA></CRM_IC></Application>"#;
    const IVR: &str = r#"<Application id="IVR"><pin>1234</pin></Application>"#;

    #[test]
    fn keeps_applications_verbatim_and_replaces_by_id() {
        let mut data = parse(&format!(
            "<ItemAttachedData>{SAP}\n{IVR}</ItemAttachedData>"
        ))
        .unwrap();
        assert_eq!(data.ids(), ["SAP-IC", "IVR"]);
        assert_eq!(
            document(&data),
            format!("<ItemAttachedData>{SAP}{IVR}</ItemAttachedData>")
        );

        let new_ivr = r#"<Application id="IVR"/>"#;
        data.merge(parse(&format!("<ItemAttachedData>{new_ivr}</ItemAttachedData>")).unwrap());
        assert_eq!(
            document(&data),
            format!("<ItemAttachedData>{SAP}{new_ivr}</ItemAttachedData>")
        );

        data.remove(&["SAP-IC".to_string()]);
        assert_eq!(data.ids(), ["IVR"]);
    }

    #[test]
    fn refuses_what_is_not_item_attached_data() {
        for bad in [
            "",
            "<Other/>",
            "<ItemAttachedData><Application id='x'>",
            "<!DOCTYPE x [<!ENTITY a 'b'>]><ItemAttachedData/>",
            "<ItemAttachedData/><ItemAttachedData/>",
            "<ItemAttachedData><Application id='x'>\u{1}</Application></ItemAttachedData>",
            "<ItemAttachedData><Application id='x'>&#1;</Application></ItemAttachedData>",
            "<ItemAttachedData><Application id='&#x1b;'/></ItemAttachedData>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("<ItemAttachedData/>").unwrap().is_empty());
    }
}
