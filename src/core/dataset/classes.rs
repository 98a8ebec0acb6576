//! Train classes: id, name and display colour, and the native `classes.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DatasetError, IGNORE, image_io};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub id: u8,
    pub name: String,
    pub color: [u8; 3],
}

/// Train classes with ids `0..len`, in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClassTable(pub Vec<ClassInfo>);

impl ClassTable {
    /// Builds a table from (name, colour) pairs, ids in order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, [u8; 3])>) -> Self {
        Self(
            pairs
                .into_iter()
                .enumerate()
                .map(|(id, (name, color))| ClassInfo {
                    id: id as u8,
                    name: name.to_string(),
                    color,
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ClassInfo> {
        self.0.iter()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|c| c.name.clone()).collect()
    }

    pub fn by_name(&self, name: &str) -> Option<&ClassInfo> {
        self.0.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Colour of a mask value, black-ish grey for ignore and unknown ids.
    pub fn color_of(&self, id: u8) -> [u8; 3] {
        self.0
            .get(id as usize)
            .map(|c| c.color)
            .unwrap_or([0, 0, 0])
    }

    /// Checks ids are `0..len` in order, there are at most 254 classes (255 is ignore), and
    /// names are non-empty and unique ignoring case (classes are looked up by name).
    pub fn validate(&self, file: &Path) -> Result<(), DatasetError> {
        let bad = |reason: String| DatasetError::BadClassTable {
            file: file.to_path_buf(),
            reason,
        };
        if self.0.is_empty() {
            return Err(bad("no classes".into()));
        }
        if self.0.len() >= IGNORE as usize {
            return Err(bad(format!(
                "{} classes; at most {} (mask value {IGNORE} means ignore)",
                self.0.len(),
                IGNORE - 1
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, class) in self.0.iter().enumerate() {
            let name = class.name.trim().to_lowercase();
            if name.is_empty() {
                return Err(bad(format!("class {i} has no name")));
            }
            if !seen.insert(name) {
                return Err(bad(format!(
                    "class name {:?} is used twice; class names must be unique",
                    class.name
                )));
            }
            if class.id as usize != i {
                return Err(bad(format!(
                    "class {:?} has id {}; ids must be 0..{} in order",
                    class.name,
                    class.id,
                    self.0.len() - 1
                )));
            }
        }
        Ok(())
    }

    /// Reads a native `classes.json`.
    pub fn read_json(file: &Path) -> Result<Self, DatasetError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DatasetError::MissingClassTable {
                    file: file.to_path_buf(),
                });
            }
            Err(e) => return Err(DatasetError::io(file, e)),
        };
        let table: Self = serde_json::from_str(&text).map_err(|e| DatasetError::BadClassTable {
            file: file.to_path_buf(),
            reason: e.to_string(),
        })?;
        table.validate(file)?;
        Ok(table)
    }

    /// Writes a native `classes.json` atomically.
    pub fn write_json(&self, file: &Path) -> Result<(), DatasetError> {
        let json = serde_json::to_vec_pretty(self).expect("class table serialises");
        image_io::write_atomic(file, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("classes.json");
        let table = ClassTable::from_pairs([("road", [128, 64, 128]), ("sky", [70, 130, 180])]);
        table.write_json(&file).unwrap();
        assert_eq!(ClassTable::read_json(&file).unwrap(), table);

        std::fs::write(&file, r#"[{"id":1,"name":"road","color":[1,2,3]}]"#).unwrap();
        let err = ClassTable::read_json(&file).unwrap_err().to_string();
        assert!(
            err.contains("classes.json") && err.contains("ids must be"),
            "{err}"
        );

        std::fs::write(
            &file,
            r#"[{"id":0,"name":"Road","color":[1,2,3]},{"id":1,"name":"road","color":[4,5,6]}]"#,
        )
        .unwrap();
        let err = ClassTable::read_json(&file).unwrap_err().to_string();
        assert!(err.contains("unique"), "{err}");

        // The last valid id is one less than the number of classes.
        let seven: Vec<String> = (0..7)
            .map(|i| {
                format!(
                    r#"{{"id":{},"name":"c{i}","color":[0,0,0]}}"#,
                    if i == 6 { 7 } else { i }
                )
            })
            .collect();
        std::fs::write(&file, format!("[{}]", seven.join(","))).unwrap();
        let err = ClassTable::read_json(&file).unwrap_err().to_string();
        assert!(err.contains("has id 7; ids must be 0..6 in order"), "{err}");

        let missing = dir.path().join("nope.json");
        let err = ClassTable::read_json(&missing).unwrap_err();
        assert!(matches!(err, DatasetError::MissingClassTable { .. }));
    }
}
