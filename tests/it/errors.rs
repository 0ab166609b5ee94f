//! Every user mistake is an error with the script's line:column and a sentence that says
//! what to fix, never a panic.

use crate::common::fails;

const DATA: &str = "let d = synthetic(#{ train: 20, test: 20 });\nlet m = mlp([784, 8, 10]);\n";

#[test]
fn unknown_function() {
    fails(
        "let x = 1;\nlet a = fgsmm(#{ eps: 0.1 });",
        "unknown function `fgsmm`",
        "2:9",
    );
}

#[test]
fn unknown_option_lists_the_valid_keys() {
    fails(
        "let a = fgsm(#{ epz: 0.1 });",
        "unknown option `epz` (did you mean `eps`?); valid options are: batch_size, eot, eps, seed, target",
        "1:17",
    );
    fails(
        &format!("{DATA}m.fit(d.train, #{{ epoch: 1 }});"),
        "(did you mean `epochs`?); valid options are: augment, batch_size, clip_grad_norm",
        "3:19",
    );
}

#[test]
fn wrong_types() {
    fails(
        "let a = fgsm(0.5);",
        "fgsm is called as: fgsm(opts: Map) -> Attack",
        "1:9",
    );
    fails(
        "let a = pgd(#{ eps: \"big\" });",
        "option `eps` must be a number, got string",
        "1:9",
    );
    fails(
        &format!("{DATA}print(evaluate(m, d.test, [1]));"),
        "element 0 of the attack list is i64, not an Attack",
        "3:7",
    );
}

#[test]
fn wrong_shape() {
    fails(
        "let d = synthetic(#{ train: 20, test: 20 });\nlet m = mlp([100, 10]);\nprint(m.accuracy(d.test));",
        "mlp([100, 10]) takes 100 input features per sample, but the images are 1×28×28 = 784",
        "3:9",
    );
}

#[test]
fn eps_and_steps_out_of_range() {
    fails(
        "let a = fgsm(#{ eps: -0.1 });",
        "eps must be a finite number >= 0 (got -0.1)",
        "1:9",
    );
    fails(
        "let a = pgd(#{ eps: 0.3, steps: 0 });",
        "steps must be at least 1",
        "1:9",
    );
    fails(
        "let a = pgd(#{ eps: 0.3, steps: -2 });",
        "option `steps` must be >= 0",
        "1:9",
    );
    fails(
        &format!("{DATA}m.fit(d.train, #{{ lr: 0.0 }});"),
        "lr (the learning rate) must be",
        "3:3",
    );
}

#[test]
fn missing_and_corrupt_data_files() {
    fails(
        "let m = mnist(\"no/such/dir\");",
        "directory no/such/dir does not exist",
        "1:9",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    crate::data::write_fixture(&dir, 10, 10);
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 0, 1, 2]).unwrap();
    fails(
        &format!("let m = mnist({:?});", dir.display().to_string()),
        "train-images-idx3-ubyte.gz: corrupt gzip data",
        "1:9",
    );
}

#[test]
fn unwritable_output_path() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let target = blocker.join("x.csv").display().to_string();
    fails(&format!("write_csv({target:?}, [#{{ a: 1 }}]);"), "cannot write", "1:1");
    fails(
        "line_chart([#{ a: 1, b: 2 }], #{ x: \"a\" }).save(\"out/c.gif\");",
        "name the file .png or .svg",
        "1:44",
    );
    fails(
        "line_chart([#{ a: 1 }], #{ x: \"a\", y: \"zz\" });",
        "no column `zz`; columns are: a",
        "1:1",
    );
}

#[test]
fn syntax_errors_point_at_the_place() {
    fails("let a = 1;\nlet b = (2 + ;", "syntax error", "2:");
}

#[test]
fn index_and_subset_out_of_range() {
    fails(
        &format!("{DATA}let s = d.test.subset([0, 25]);"),
        "index 25 is out of range for a data set of 20 samples",
        "3:16",
    );
    fails(
        &format!("{DATA}let r = d.test.images()[20];"),
        "index 20 is out of range",
        "3:24",
    );
}
