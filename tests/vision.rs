//! The vision side: EfficientNet-Lite0 loads the set-up's converted weights.
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use umgf::vision::efficientnet::{EfficientNetLite0, FEATURES, INPUT, normalise};

#[test]
fn efficientnet_loads_every_weight_and_runs() {
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/efficientnet-lite0/model.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let model = EfficientNetLite0::new(&vs.root());
    let loaded = umgf::torch::load_safetensors(&vs, "", &weights).unwrap();
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
    use umgf::vision::image::{center_crop, load_rgb};
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/efficientnet-lite0/model.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let model = EfficientNetLite0::new(&vs.root());
    umgf::torch::load_safetensors(&vs, "", &weights).unwrap();
    let top1 = |name: &str| {
        let input = center_crop(&load_rgb(&photo(name)).unwrap(), INPUT as u32)
            .unwrap()
            .unsqueeze(0);
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

/// The pipeline's image encoder against the PyTorch definition (batch norms unfolded) on real photos.
#[test]
fn efficientnet_matches_pytorch_on_real_photos() {
    use umgf::vision::image::{center_crop, load_rgb};
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let weights = repo.join("models/efficientnet-lite0/model.safetensors");
    // The pipeline's encoder: batch norms folded into the convolutions, channels-last.
    let encoder = umgf::vision::efficientnet::ImageEncoder::load(&weights, Device::Cpu).unwrap();

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
        .map(|n| center_crop(&load_rgb(&photo(n)).unwrap(), INPUT as u32).unwrap())
        .collect();
    let crops = Tensor::stack(&crops, 0);
    let images = normalise(&crops);
    let ours = encoder.encode(&crops).unwrap();

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

/// The bad-image catalogue: every odd file either decodes to a usable RGB image or is reported as a
/// bad image with a reason; nothing panics and nothing fails the run.
mod bad_images {
    use std::io::Cursor;
    use std::path::{Path, PathBuf};

    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
    use umgf::vision::image::{MAX_SIDE, center_crop, load_rgb};

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn encode(image: RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    fn reason(path: &Path) -> String {
        match load_rgb(path) {
            Ok(image) => panic!("{} decoded to {:?}", path.display(), image.dimensions()),
            Err(bad) => bad.0,
        }
    }

    #[test]
    fn unusable_files_are_bad_images_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let zero = write(dir.path(), "zero.jpg", b"");
        assert_eq!(reason(&zero), "empty file (0 bytes)");
        let text = write(dir.path(), "text.jpg", b"<html>404 Not Found</html>\n");
        assert!(reason(&text).contains("not an image"), "{}", reason(&text));
        let missing = dir.path().join("missing.jpg");
        assert!(
            reason(&missing).contains("cannot open"),
            "{}",
            reason(&missing)
        );

        let jpeg = encode(gradient(64, 48), ImageFormat::Jpeg);
        let truncated = write(dir.path(), "truncated.jpg", &jpeg[..jpeg.len() / 3]);
        assert!(
            reason(&truncated).contains("cannot decode"),
            "{}",
            reason(&truncated)
        );

        // A GIF whose header claims 20000x20000: refused before the 1.2 GB buffer is allocated.
        let mut gif = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
            encoder
                .encode(&[255, 0, 0, 255], 1, 1, image::ExtendedColorType::Rgba8)
                .unwrap();
        }
        gif[6..8].copy_from_slice(&20000u16.to_le_bytes());
        gif[8..10].copy_from_slice(&20000u16.to_le_bytes());
        let huge = write(dir.path(), "huge.gif", &gif);
        let why = reason(&huge);
        assert!(
            why.contains("limit") || why.contains("cannot decode"),
            "{why}"
        );
    }

    #[test]
    fn odd_but_valid_images_decode() {
        let dir = tempfile::tempdir().unwrap();
        // 1x1: decodes, and the model crop still works.
        let tiny = write(
            dir.path(),
            "tiny.png",
            &encode(gradient(1, 1), ImageFormat::Png),
        );
        let image = load_rgb(&tiny).unwrap();
        assert_eq!(image.dimensions(), (1, 1));
        assert_eq!(center_crop(&image, 224).unwrap().size(), vec![3, 224, 224]);

        // Grayscale becomes RGB with equal channels.
        let gray = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([(x * 30) as u8]));
        let mut bytes = Cursor::new(Vec::new());
        DynamicImage::ImageLuma8(gray)
            .write_to(&mut bytes, ImageFormat::Png)
            .unwrap();
        let gray = load_rgb(&write(dir.path(), "gray.png", bytes.get_ref())).unwrap();
        let p = gray.get_pixel(3, 0);
        assert!(p[0] == p[1] && p[1] == p[2] && p[0] == 90);

        // Larger than MAX_SIDE: downscaled, aspect kept.
        let big = write(
            dir.path(),
            "big.png",
            &encode(gradient(MAX_SIDE * 2, MAX_SIDE), ImageFormat::Png),
        );
        assert_eq!(
            load_rgb(&big).unwrap().dimensions(),
            (MAX_SIDE, MAX_SIDE / 2)
        );

        // WebP (lossless).
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .encode(
                gradient(16, 8).as_raw(),
                16,
                8,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        assert_eq!(
            load_rgb(&write(dir.path(), "a.webp", &webp))
                .unwrap()
                .dimensions(),
            (16, 8)
        );
    }

    #[test]
    fn animated_gif_gives_its_first_frame() {
        use image::{Delay, Frame, RgbaImage};
        let dir = tempfile::tempdir().unwrap();
        let mut gif = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
            for color in [[200, 0, 0, 255], [0, 0, 200, 255]] {
                let frame = Frame::from_parts(
                    RgbaImage::from_pixel(4, 4, image::Rgba(color)),
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                );
                encoder.encode_frame(frame).unwrap();
            }
        }
        let first = load_rgb(&write(dir.path(), "anim.gif", &gif)).unwrap();
        let p = first.get_pixel(0, 0);
        assert!(p[0] > 150 && p[2] < 50, "first frame is red, got {p:?}");
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 4x2 JPEG with an EXIF block saying "rotate 90° clockwise" (orientation 6) comes out 2x4.
        let jpeg = encode(gradient(4, 2), ImageFormat::Jpeg);
        let tiff: Vec<u8> = [
            &b"II*\0"[..],
            &8u32.to_le_bytes(),      // offset of the first IFD
            &1u16.to_le_bytes(),      // one entry
            &0x0112u16.to_le_bytes(), // Orientation
            &3u16.to_le_bytes(),      // SHORT
            &1u32.to_le_bytes(),      // count
            &[6, 0, 0, 0],            // value 6
            &0u32.to_le_bytes(),      // no next IFD
        ]
        .concat();
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(&tiff);
        let mut with_exif = jpeg[..2].to_vec(); // SOI
        with_exif.extend_from_slice(&app1);
        with_exif.extend_from_slice(&jpeg[2..]);
        let dir = tempfile::tempdir().unwrap();
        let image = load_rgb(&write(dir.path(), "rotated.jpg", &with_exif)).unwrap();
        assert_eq!(image.dimensions(), (2, 4));
    }
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    use jpeg_encoder::{ColorType, Encoder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cmyk.jpg");
    // 8x8 of pure cyan in CMYK (C=255, M=Y=K=0).
    let pixels: Vec<u8> = std::iter::repeat_n([255u8, 0, 0, 0], 64)
        .flatten()
        .collect();
    Encoder::new_file(&path, 95)
        .unwrap()
        .encode(&pixels, 8, 8, ColorType::Cmyk)
        .unwrap();
    let image = umgf::vision::image::load_rgb(&path).unwrap();
    let p = image.get_pixel(4, 4);
    eprintln!("CMYK cyan decoded as RGB {p:?}");
    assert!(p[0] < 60 && p[1] > 180 && p[2] > 180, "cyan, got {p:?}");
}

#[test]
fn detector_graphs_load_with_every_weight() {
    use umgf::vision::tfjs::GraphModel;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/detector");
    for (name, nodes) in [("centernet.json", 544), ("nanodet.json", 489)] {
        let model = GraphModel::load(&dir.join(name)).unwrap();
        assert_eq!(model.nodes.len(), nodes, "{name}");
        // Every constant of the graph has its value, and no value is NaN (a misread float16 shows up
        // as NaNs; NanoDet's max-pool padding constant is legitimately -inf).
        for node in model.nodes.iter().filter(|n| n.op == "Const") {
            let weight = model
                .weights
                .get(&node.name)
                .unwrap_or_else(|| panic!("{name}: no weight for {}", node.name));
            if weight.kind() == Kind::Float {
                assert_eq!(
                    weight.isnan().any().int64_value(&[]),
                    0,
                    "{name}: {}",
                    node.name
                );
            }
        }
        eprintln!(
            "{name}: {} nodes, {} weights, ops {:?}",
            model.nodes.len(),
            model.weights.len(),
            model.op_counts()
        );
    }
}

/// The detector on skimage's photos: `human`'s thresholds, every detection printed.
#[test]
fn detector_finds_the_person_and_the_motorcycle() {
    use umgf::vision::detector::{CenterNet, DetectorConfig, default_model};
    use umgf::vision::image::load_rgb;
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let detector = CenterNet::load(&default_model(&models), Device::Cpu).unwrap();
    let config = DetectorConfig::default();
    let detect = |name: &str| {
        let image = load_rgb(&photo(name)).unwrap();
        let found = tch::no_grad(|| detector.detect(&image, &config)).unwrap();
        for d in &found {
            eprintln!(
                "{name}: {} {:.2} [{:.0}, {:.0}, {:.0}, {:.0}]",
                d.label(),
                d.score,
                d.bbox.x1,
                d.bbox.y1,
                d.bbox.x2,
                d.bbox.y2
            );
        }
        found
    };
    let astronaut = detect("astronaut.png");
    assert_eq!(astronaut.first().map(|d| d.label()), Some("person"));
    let motorcycle = detect("motorcycle_left.png");
    assert_eq!(motorcycle.first().map(|d| d.label()), Some("motorcycle"));
}

fn write_f32(path: &std::path::Path, t: &Tensor) {
    let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &std::path::Path) -> Tensor {
    let bytes = std::fs::read(path).unwrap();
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_slice(&values)
}

/// The graph interpreter against TF.js itself (`@tensorflow/tfjs` CPU backend, pure JS, in Node) on
/// the same 512x512 inputs: heat maps, box sizes and the graph's decoded candidates.
#[test]
fn detector_graph_matches_tfjs() {
    use umgf::vision::detector::{CenterNet, default_model};
    use umgf::vision::image::load_rgb;
    use umgf::vision::tfjs::GraphModel;
    let repo = crate::common::repo();
    let model = default_model(&repo.join("models"));
    let detector = CenterNet::load(&model, Device::Cpu).unwrap();
    let outputs = ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"];
    let plan = GraphModel::load(&model)
        .unwrap()
        .plan(&["tower_0/images"], &outputs)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["astronaut.png", "motorcycle_left.png"] {
        let input = detector.input(&load_rgb(&photo(name)).unwrap()).unwrap();
        let ours = tch::no_grad(|| plan.run(&[input.shallow_clone()])).unwrap();
        let input_path = dir.path().join("input.f32");
        write_f32(&input_path, &input);
        let out_dir = dir.path().join(name);
        crate::common::node_reference(
            "tfjs_graph.js",
            &[
                "--model",
                model.to_str().unwrap(),
                "--input",
                input_path.to_str().unwrap(),
                "--shape",
                "1,512,512,3",
                "--outputs",
                &outputs.join(","),
                "--out-dir",
                out_dir.to_str().unwrap(),
            ],
        );
        let theirs: Vec<Tensor> = (0..outputs.len())
            .map(|i| read_f32(&out_dir.join(format!("{i}.f32"))))
            .collect();
        let diff = |i: usize| {
            let a = ours[i].flatten(0, -1).to_kind(Kind::Float);
            assert_eq!(a.size(), theirs[i].size(), "{name}: {}", outputs[i]);
            f64::try_from((a - &theirs[i]).abs().max()).unwrap()
        };
        let (keypoints, wh) = (diff(0), diff(1));
        eprintln!("{name}: max abs difference keypoints {keypoints:e}, wh {wh:e} (pixels)");
        assert!(keypoints < 1e-3, "{name}: keypoints differ by {keypoints}");
        assert!(wh < 1e-2, "{name}: wh differ by {wh}");
        // Candidates: the same 100 in the same order (scores are distinct), boxes within 0.01 px.
        let ours = ours[2].view([100, 6]);
        let theirs = theirs[2].view([100, 6]);
        let classes_equal = ours.select(1, 5).eq_tensor(&theirs.select(1, 5)).all();
        assert_eq!(classes_equal.int64_value(&[]), 1, "{name}: classes differ");
        let boxes = f64::try_from((ours - theirs).abs().max()).unwrap();
        eprintln!("{name}: candidates max abs difference {boxes:e}");
        assert!(boxes < 1e-2, "{name}: candidates differ by {boxes}");
    }
}

/// A region's features are the same bits whichever regions share its batch, and with the thread
/// count the pipeline's workers use: shards, incremental dumps and one process store the same bytes.
#[test]
fn region_features_do_not_depend_on_the_batch() {
    use umgf::vision::detector::BBox;
    use umgf::vision::efficientnet::ImageEncoder;
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/efficientnet-lite0/model.safetensors");
    let encoder = ImageEncoder::load(&weights, Device::Cpu).unwrap();
    // The pipeline's workers run one thread each.
    tch::set_num_threads(1);
    let image = umgf::vision::image::load_rgb(&photo("motorcycle_left.png")).unwrap();
    let boxes: Vec<Option<BBox>> = [
        (10.0, 20.0, 300.0, 280.0),
        (100.0, 50.0, 500.0, 400.0),
        (0.0, 0.0, 64.0, 64.0),
    ]
    .into_iter()
    .map(|(x1, y1, x2, y2)| Some(BBox { x1, y1, x2, y2 }))
    .chain([None])
    .collect();
    let all = encoder.features(&image, &boxes).unwrap();
    for picked in [vec![2], vec![3, 1], vec![0, 2, 3]] {
        let some: Vec<Option<BBox>> = picked.iter().map(|&i| boxes[i]).collect();
        let features = encoder.features(&image, &some).unwrap();
        for (row, &i) in picked.iter().enumerate() {
            assert!(
                features.get(row as i64).equal(&all.get(i as i64)),
                "region {i} in batch {picked:?}"
            );
        }
    }
}
