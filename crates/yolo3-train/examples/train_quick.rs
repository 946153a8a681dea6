//! Trains with `TrainConfig::default()` (the embedded synthetic run), overridden by
//! `KEY=VALUE` arguments in `args.toml` syntax (e.g. `epochs=5 batch=8`), printing one line per
//! epoch. For tuning the defaults without the CLI.

use yolo3_train::{EpochRow, Observer, TrainConfig};

struct Print;

impl Observer for Print {
    fn message(&mut self, text: &str) {
        eprintln!("{text}");
    }
    fn epoch_end(&mut self, r: &EpochRow) {
        eprintln!("{r}");
    }
}

fn main() {
    let text = TrainConfig::default().to_toml().expect("serialises");
    let mut table: toml::Table = toml::from_str(&text).expect("own output parses");
    for arg in std::env::args().skip(1) {
        let (key, value) = arg.split_once('=').expect("arguments are KEY=VALUE");
        let value: toml::Table = toml::from_str(&format!("v = {value}")).expect("a TOML value");
        // Dotted keys reach into tables: `data.train_images=600`.
        let mut target = &mut table;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = target
                .get_mut(*part)
                .and_then(toml::Value::as_table_mut)
                .expect("an existing table");
        }
        target.insert(parts[parts.len() - 1].to_owned(), value["v"].clone());
    }
    let config: TrainConfig = table.try_into().expect("a valid configuration");
    match yolo3_train::train(config, &yolo3_train::Replicas::single(), &mut Print) {
        Ok(s) => eprintln!(
            "done in {:.1} min: mAP50 {:?} mAP50-95 {:?}",
            s.seconds / 60.0,
            s.best.as_ref().and_then(|b| b.map50),
            s.best.as_ref().and_then(|b| b.map50_95)
        ),
        Err(e) => eprintln!("error: {e}"),
    }
}
