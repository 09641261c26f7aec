//! Plain-text tables for humans.

/// Renders `rows` under `headers`, columns padded to their widest cell and
/// separated by two spaces; no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `-` for a missing value.
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A list joined with commas, `-` when empty.
pub fn list<T: std::fmt::Display>(values: &[T]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns() {
        let rows = vec![
            vec!["1".to_owned(), "127.0.0.1:7101".to_owned(), "up".to_owned()],
            vec!["22".to_owned(), "h:1".to_owned(), String::new()],
        ];
        let text = render(&["ID", "ADDR", "STATE"], &rows);
        assert_eq!(
            text,
            "ID  ADDR            STATE\n1   127.0.0.1:7101  up\n22  h:1\n"
        );
    }

    #[test]
    fn formats_optionals_and_lists() {
        assert_eq!(opt(None::<u64>), "-");
        assert_eq!(opt(Some(3)), "3");
        assert_eq!(list::<u64>(&[]), "-");
        assert_eq!(list(&[1, 2, 3]), "1,2,3");
    }
}
