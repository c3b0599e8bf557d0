//! The vision side: EfficientNet-Lite0 loads the set-up's converted weights.
use pipeline::vision::efficientnet::{EfficientNetLite0, FEATURES, INPUT, normalise};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[test]
fn efficientnet_loads_every_weight_and_runs() {
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/efficientnet-lite0/model.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let model = EfficientNetLite0::new(&vs.root());
    let loaded = pipeline::torch::load_safetensors(&vs, "", &weights).unwrap();
    assert_eq!(
        loaded,
        vs.variables().len(),
        "every variable of the model came from the file"
    );

    let gray = Tensor::full([2, 3, INPUT, INPUT], 128.0, (Kind::Float, Device::Cpu));
    let features = tch::no_grad(|| model.features(&normalise(&gray)));
    assert_eq!(features.size(), vec![2, FEATURES]);
    assert_eq!(features.isfinite().all().int64_value(&[]), 1);
    let logits = tch::no_grad(|| model.logits(&normalise(&gray)));
    assert_eq!(logits.size(), vec![2, 1000]);
}

/// skimage's sample photos, extracted by `make setup-reference` (make test runs it).
fn photo(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../photos")
        .join(name);
    assert!(
        path.is_file(),
        "{} missing: run `make setup-reference`",
        path.display()
    );
    path
}

#[test]
fn efficientnet_classifies_real_photos() {
    use pipeline::vision::image::{center_crop, load_rgb};
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/efficientnet-lite0/model.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let model = EfficientNetLite0::new(&vs.root());
    pipeline::torch::load_safetensors(&vs, "", &weights).unwrap();
    let top1 = |name: &str| {
        let input = center_crop(&load_rgb(&photo(name)).unwrap(), INPUT as u32).unsqueeze(0);
        let logits = tch::no_grad(|| model.logits(&normalise(&input)));
        logits.argmax(-1, false).int64_value(&[0])
    };
    // ImageNet: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso.
    let cat = top1("chelsea.png");
    eprintln!("chelsea.png: ImageNet class {cat}");
    assert!(
        [281, 282, 285].contains(&cat),
        "chelsea.png classified as {cat}"
    );
    assert_eq!(top1("coffee.png"), 967, "coffee.png");
}

#[test]
fn efficientnet_matches_pytorch_on_real_photos() {
    use pipeline::vision::image::{center_crop, load_rgb};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let weights = repo.join("models/efficientnet-lite0/model.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let model = EfficientNetLite0::new(&vs.root());
    pipeline::torch::load_safetensors(&vs, "", &weights).unwrap();

    let names = [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "horse.png",
        "motorcycle_left.png",
        "rocket.jpg",
    ];
    let crops: Vec<Tensor> = names
        .iter()
        .map(|n| center_crop(&load_rgb(&photo(n)).unwrap(), INPUT as u32))
        .collect();
    let images = normalise(&Tensor::stack(&crops, 0));
    let ours = tch::no_grad(|| model.features(&images));

    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        dir.path().join("images.safetensors"),
        dir.path().join("features.safetensors"),
    );
    Tensor::write_safetensors(&[("images", &images)], &input).unwrap();
    crate::common::reference(
        "efficientnet_features.py",
        &[
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
    );
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&output)
        .unwrap()
        .into_iter()
        .collect();
    let diff = (&ours - &reference["features"])
        .abs()
        .max()
        .double_value(&[]);
    eprintln!(
        "EfficientNet-Lite0 pooled features, {} photos: max abs difference {diff:e}",
        names.len()
    );
    assert!(diff < 1e-3, "max abs difference {diff}");
}
