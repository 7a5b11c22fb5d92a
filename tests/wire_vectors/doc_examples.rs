//! PROTOCOL.md's worked examples (section 10) read back as bytes, so that the test can hold
//! every one of them to a vector: the document cannot show a frame the codec does not make.

fn hex_token(token: &str) -> Option<u8> {
    (token.len() == 2)
        .then(|| u8::from_str_radix(token, 16).ok())
        .flatten()
}

/// The frames of the `text` blocks of section 10: in a block of annotated lines, the hex
/// bytes each line starts with, concatenated; in a block of one-line frames ("relay → client
/// Ping   00 00 00 01 08"), the hex bytes each line ends with, one frame per line.
pub fn frames(protocol_md: &str) -> Vec<Vec<u8>> {
    let start = protocol_md
        .find("## 10. Worked examples")
        .expect("PROTOCOL.md has section 10");
    let end = protocol_md[start..]
        .find("\n## 11.")
        .map_or(protocol_md.len(), |end| start + end);
    let mut frames = Vec::new();
    for (index, block) in protocol_md[start..end].split("```").enumerate() {
        // Odd pieces are inside a fence.
        let Some(block) = block.strip_prefix("text\n").filter(|_| index % 2 == 1) else {
            continue;
        };
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        let one_line_frames = lines
            .iter()
            .all(|l| l.starts_with("relay") || l.starts_with("client"));
        if one_line_frames {
            for line in lines {
                let mut frame: Vec<u8> =
                    line.split_whitespace().rev().map_while(hex_token).collect();
                frame.reverse();
                frames.push(frame);
            }
        } else {
            frames.push(
                lines
                    .iter()
                    .flat_map(|l| l.split_whitespace().map_while(hex_token))
                    .collect(),
            );
        }
    }
    frames
}
