//! `docs/asm.md` must contain the instruction table generated from the ISA
//! definition, verbatim, between its markers.

#[test]
fn asm_doc_table_matches_the_isa() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asm.md")).unwrap();
    let begin = "<!-- BEGIN INSTRUCTION TABLE (generated: cargo test --test docs) -->\n";
    let end = "<!-- END INSTRUCTION TABLE -->";
    let a = doc.find(begin).expect("begin marker") + begin.len();
    let b = doc.find(end).expect("end marker");
    let table = rcvm::bytecode::isa::markdown_table();
    if doc[a..b] != table {
        if std::env::var_os("RCVM_BLESS").is_some() {
            let new = format!("{}{}{}", &doc[..a], table, &doc[b..]);
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asm.md"), new).unwrap();
        } else {
            panic!("docs/asm.md's instruction table is out of date; rerun with RCVM_BLESS=1 to regenerate it");
        }
    }
}

#[test]
fn every_mnemonic_is_documented_in_prose() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asm.md")).unwrap();
    let end = doc.find("<!-- BEGIN INSTRUCTION TABLE").unwrap();
    for m in rcvm::bytecode::isa::mnemonics() {
        assert!(doc[..end].contains(&format!("`{m}")), "docs/asm.md never mentions `{m}` outside the table");
    }
}
