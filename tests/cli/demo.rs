//! `psa demo`: its table, its prediction lines, and its data reproduced through `psa match`.

use super::*;

// ------------------------------------------------------------------------------------------------
// 11. psa demo.

/// The rows of the demo's table: method → (trace, × random, FOSCTTM, latent MSE).
fn demo_table(stdout: &str) -> Vec<(String, [f64; 5])> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let method = *fields.first()?;
            if !["ot", "snn", "random"].contains(&method) {
                return None;
            }
            assert_eq!(fields.len(), 7, "table row {line:?}");
            let number = |k: usize| fields[k].parse::<f64>().expect("a number in the table");
            Some((
                method.to_string(),
                [number(1), number(2), number(3), number(4), number(5)],
            ))
        })
        .collect()
}

/// The number after `key` in the demo's first line, if the line states it.
fn demo_setting(stdout: &str, key: &str) -> Option<String> {
    let header = stdout.lines().find(|line| line.contains(key))?;
    let rest = &header[header.find(key)? + key.len()..];
    let value: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    value.parse::<f64>().is_ok().then_some(value)
}

#[test]
fn demo_prints_the_three_methods_and_its_data_reproduce_through_match() {
    let work = Work::new();
    let data = work.path("data");
    let output = work.psa([
        "demo",
        "--tabular",
        "--n-per-group",
        "20",
        "--epochs",
        "5",
        "--backend",
        "cpu",
        "--write-data",
        &arg(&data),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = demo_table(&stdout);
    let methods: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["ot", "snn", "random"], "{stdout}");
    let [ot, _, random] = [&table[0].1, &table[1].1, &table[2].1];
    assert!(
        ot[0] > random[0],
        "OT trace {} ≤ random {}:\n{stdout}",
        ot[0],
        random[0]
    );
    assert!(stdout.contains("FOSCTTM"), "{stdout}");
    // The prediction lines: one R² per source of partners, each a finite number ≤ 1.
    let predictions: Vec<(&str, f64)> = stdout
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("R²")?;
            let (value, source) = rest.split_once("trained on")?;
            let source = source.split(" (").next()?.trim();
            Some((source, value.trim().parse::<f64>().ok()?))
        })
        .collect();
    let sources: Vec<&str> = predictions.iter().map(|(s, _)| *s).collect();
    assert_eq!(sources, ["PS+OT", "random", "true pairs"], "{stdout}");
    assert!(
        predictions
            .iter()
            .all(|(_, r2)| r2.is_finite() && *r2 <= 1.0),
        "{stdout}"
    );
    let random_row = stdout.lines().find(|l| l.starts_with("random")).unwrap();
    assert!(
        random_row.contains(" 0.5000 "),
        "random FOSCTTM is 0.5: {random_row:?}"
    );
    assert_close("random × random", random[1], 1.0, 0.005);
    // Both modalities hold the same units, so a random partner is off by twice the variance
    // around the group mean that the random projection is off by.
    assert_close("random pair MSE", random[4], 2.0 * random[3], 2e-4);

    // The written data, matched by `psa match` with the demo's settings, give the same numbers.
    for (k, (method, row)) in table.iter().enumerate() {
        let file = |name: &str| arg(&data.join(name));
        let mut args = Vec::new();
        for m in ["1", "2"] {
            for (flag, name) in [
                ("scores", "scores"),
                ("labels", "labels"),
                ("ids", "ids"),
                ("latents", "latents"),
            ] {
                args.extend([format!("--{flag}{m}"), file(&format!("{name}{m}.npy"))]);
            }
        }
        args.extend(strings(&[
            "--eval-features1",
            &file("features1.npy"),
            "--method",
            method,
        ]));
        // The demo states its OT settings: "matching: OT λ = 0.05, tol 1e-4, …".
        for (key, flag) in [("λ = ", "--epsilon"), ("tol ", "--tol")] {
            if let Some(value) = demo_setting(&stdout, key) {
                args.extend([flag.to_string(), value]);
            }
        }
        let run = work.run_match(&format!("out{k}"), &args);
        let mean = &run.summary["mean"];
        let groups = run.summary["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 12);
        assert!(groups.iter().all(|g| g["n1"] == 20 && g["n2"] == 20));
        assert_close(
            &format!("{method} trace"),
            mean["trace"].as_f64().unwrap(),
            row[0],
            5.1e-6,
        );
        assert_close(
            &format!("{method} FOSCTTM"),
            mean["foscttm"].as_f64().unwrap(),
            row[2],
            5.1e-5,
        );
        assert_close(
            &format!("{method} latent MSE"),
            mean["latent_mse"].as_f64().unwrap(),
            row[3],
            5.1e-5,
        );
        assert_close(
            &format!("{method} pair MSE"),
            mean["latent_pair_mse"].as_f64().unwrap(),
            row[4],
            5.1e-5,
        );
    }
}
