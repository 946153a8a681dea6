//! The loader is deterministic for a seed whatever the thread count, the prefetcher yields the
//! same batches, and validation batches are letterboxed.

use std::sync::Arc;

use yolo3_data::{
    generate, read_train_txt, AugmentOptions, Batch, Dataset, InputSize, Loader, LoaderOptions,
    MosaicOptions, MultiScale, ReadOptions, Shard, SyntheticOptions,
};

/// `images` synthetic training images of `size` pixels.
fn synthetic(images: usize, size: u32, seed: u64) -> (tempfile::TempDir, Arc<Dataset>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SyntheticOptions {
        images_train: images,
        images_val: 0,
        size,
        seed,
        ..SyntheticOptions::default()
    };
    let s = generate(dir.path(), &opts).unwrap();
    let ds = read_train_txt(&s.train, &s.classes, &ReadOptions::default()).unwrap();
    (dir, Arc::new(ds))
}

fn dataset() -> (tempfile::TempDir, Arc<Dataset>) {
    synthetic(20, 64, 3)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

fn training_options() -> LoaderOptions {
    LoaderOptions {
        batch_size: 6,
        input: InputSize::square(64),
        mosaic: Some(MosaicOptions { probability: 0.5, ..MosaicOptions::default() }),
        seed: 11,
        ..LoaderOptions::default()
    }
}

#[test]
fn batches_are_identical_with_one_and_two_threads() {
    let (_dir, ds) = dataset();
    let loader = Loader::all(ds, training_options()).unwrap();
    assert_eq!(loader.batches_per_epoch(), 4);
    for epoch in 0..2 {
        for batch in 0..4 {
            let a = pool(1).install(|| loader.load_batch(epoch, batch).unwrap());
            let b = pool(2).install(|| loader.load_batch(epoch, batch).unwrap());
            assert_eq!(a.images.len(), a.len() * 3 * 64 * 64);
            let bits = |x: &Batch| x.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "epoch {epoch} batch {batch}");
            assert_eq!(a.boxes, b.boxes);
            assert_eq!(a.indices, b.indices);
        }
    }
    // The order changes between epochs and covers every sample once.
    let mut e0 = loader.epoch_order(0);
    let e1 = loader.epoch_order(1);
    assert_ne!(e0, e1);
    e0.sort_unstable();
    assert_eq!(e0, (0..20).collect::<Vec<_>>());
}

#[test]
fn shards_of_every_rank_make_up_the_whole_batch() {
    let (_dir, ds) = dataset();
    let options = LoaderOptions {
        multi_scale: Some(MultiScale { min: 32, max: 96, step: 32, every: 1 }),
        ..training_options()
    };
    let whole = Loader::all(Arc::clone(&ds), options.clone()).unwrap();
    for world in [2, 4] {
        let ranks: Vec<Loader> =
            (0..world).map(|rank| whole.clone().with_shard(Shard { rank, world })).collect();
        for batch in 0..whole.batches_per_epoch() {
            let all = whole.load_batch(1, batch).unwrap();
            let parts: Vec<Batch> = ranks.iter().map(|l| l.load_batch(1, batch).unwrap()).collect();
            let mut images = Vec::new();
            let mut boxes = Vec::new();
            let mut indices = Vec::new();
            for (rank, p) in parts.iter().enumerate() {
                assert_eq!(p.input, all.input, "one input size per global batch");
                // Balanced: 6 images over 4 ranks are 1, 2, 1, 2; the last 2 are 0, 0, 1, 1.
                let expected = (rank + 1) * all.len() / world - rank * all.len() / world;
                assert_eq!(p.len(), expected, "rank {rank} of {world}, batch {batch}");
                images.extend_from_slice(&p.images);
                boxes.extend(p.boxes.iter().cloned());
                indices.extend_from_slice(&p.indices);
            }
            assert_eq!(indices, all.indices, "world {world} batch {batch}");
            assert_eq!(boxes, all.boxes);
            assert!(images.iter().zip(&all.images).all(|(a, b)| a.to_bits() == b.to_bits()));
            assert_eq!(images.len(), all.images.len());
        }
    }
}

#[test]
fn samples_do_not_depend_on_the_batch_size() {
    let (_dir, ds) = dataset();
    let a = Loader::all(ds.clone(), training_options()).unwrap();
    let b = Loader::all(ds, LoaderOptions { batch_size: 4, ..training_options() }).unwrap();
    let (ia, ba, _) = a.load_sample(2, 5, InputSize::square(64)).unwrap();
    let (ib, bb, _) = b.load_sample(2, 5, InputSize::square(64)).unwrap();
    assert_eq!(ia, ib);
    assert_eq!(ba, bb);
}

#[test]
fn prefetch_yields_the_same_batches_and_resumes_mid_epoch() {
    let (_dir, ds) = dataset();
    let loader = Loader::all(ds, training_options()).unwrap();
    let all: Vec<Batch> = loader.prefetch(4, 0, 2).map(Result::unwrap).collect();
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().map(Batch::len).collect::<Vec<_>>(), [6, 6, 6, 2]);
    for (i, b) in all.iter().enumerate() {
        assert_eq!(b, &loader.load_batch(4, i).unwrap());
    }
    let resumed: Vec<Batch> = loader.prefetch(4, 2, 1).map(Result::unwrap).collect();
    assert_eq!(resumed, all[2..]);
    // Dropping an unfinished prefetcher stops its thread.
    let mut it = loader.prefetch(5, 0, 1);
    assert!(it.next().is_some());
    drop(it);
}

#[test]
fn multi_scale_changes_the_size_every_n_batches() {
    let (_dir, ds) = dataset();
    let ms = MultiScale { min: 32, max: 96, step: 32, every: 2 };
    let opts = LoaderOptions { batch_size: 2, multi_scale: Some(ms), ..training_options() };
    let loader = Loader::all(ds, opts).unwrap();
    let sizes: Vec<InputSize> = (0..10).map(|b| loader.input_size(0, b)).collect();
    for pair in sizes.chunks(2) {
        assert_eq!(pair[0], pair[1]);
    }
    assert!(sizes.iter().all(|s| [32, 64, 96].contains(&s.width) && s.width == s.height));
    let b = loader.load_batch(0, 3).unwrap();
    assert_eq!(b.images.len(), 2 * 3 * (b.input.width * b.input.height) as usize);
    assert_eq!(b.input, sizes[3]);
}

#[test]
fn validation_batches_are_letterboxed_in_order() {
    let (_dir, ds) = dataset();
    let loader =
        Loader::all(ds.clone(), LoaderOptions::validation(8, InputSize { width: 96, height: 64 }))
            .unwrap();
    let b = loader.load_batch(0, 0).unwrap();
    assert_eq!(b.indices, (0..8).collect::<Vec<_>>());
    for (k, &i) in b.indices.iter().enumerate() {
        let lb = b.letterboxes[k].unwrap();
        assert_eq!((lb.dx, lb.dy, lb.resized_width, lb.resized_height), (16, 0, 64, 64));
        assert_eq!(b.boxes[k].len(), ds.samples[i].boxes.len());
        for (t, o) in b.boxes[k].iter().zip(&ds.samples[i].boxes) {
            assert_eq!(t.bbox.x_min, o.bbox.x_min + 16.0);
            assert_eq!(t.class, o.class);
        }
    }
    // The same epoch gives the same bytes twice.
    assert_eq!(b, loader.load_batch(0, 0).unwrap());
}

#[test]
fn bad_options_and_unreadable_images_are_errors() {
    let (dir, ds) = dataset();
    let e =
        Loader::all(ds.clone(), LoaderOptions { batch_size: 0, ..training_options() }).unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
    assert!(Loader::new(ds.clone(), vec![99], training_options()).is_err());
    std::fs::write(dir.path().join("images/train/000003.png"), b"broken").unwrap();
    let loader = Loader::new(
        ds,
        vec![3],
        LoaderOptions { augment: Some(AugmentOptions::default()), ..training_options() },
    )
    .unwrap();
    let e = loader.load_batch(0, 0).unwrap_err();
    assert!(e.to_string().contains("000003.png"), "{e}");
    let mut it = loader.prefetch(0, 0, 1);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn large_images_give_their_grid_of_tiles_as_items() {
    // Six 200-pixel images in tiles of 96: a grid of 3 x 3 per image (20% overlap).
    let (_dir, ds) = synthetic(6, 200, 5);
    let tiles = |random| yolo3_data::TileOptions { side: 96, random };
    let options = LoaderOptions {
        batch_size: 4,
        input: InputSize::square(64),
        tiles: Some(tiles(true)),
        ..training_options()
    };
    let train = Loader::all(Arc::clone(&ds), options).unwrap();
    assert_eq!(train.len(), 6 * 9);
    let a = train.load_batch(2, 3).unwrap();
    assert_eq!(a, train.load_batch(2, 3).unwrap(), "a tile's position is keyed, not drawn");
    assert_ne!(a.images, train.load_batch(3, 3).unwrap().images, "positions change by epoch");
    for (k, boxes) in a.boxes.iter().enumerate() {
        assert_eq!(a.indices[k], train.item(a.items[k]).0);
        for b in boxes {
            assert!(b.bbox.x_min >= 0.0 && b.bbox.x_max <= 64.0, "{b:?}");
        }
    }

    let val = Loader::all(
        Arc::clone(&ds),
        LoaderOptions {
            tiles: Some(tiles(false)),
            ..LoaderOptions::validation(5, InputSize::square(96))
        },
    )
    .unwrap();
    assert_eq!(val.len(), 6 * 9);
    let batch = val.load_batch(0, 0).unwrap();
    // Item 4 is the centre tile of image 0: (52, 52) to (148, 148), shown at full resolution.
    let (sample, tile) = val.item(4);
    let tile = tile.expect("a fixed tile");
    assert_eq!((sample, tile.x, tile.y, tile.width), (0, 52, 52, 96));
    let lb = batch.letterboxes[4].expect("validation letterboxes");
    assert_eq!((lb.image.width, lb.image.height), (96, 96));
    let inside: Vec<_> = ds.samples[0]
        .boxes
        .iter()
        .filter_map(|b| yolo3_data::tiles::crop_box(&b.bbox, &tile))
        .collect();
    assert_eq!(batch.boxes[4].len(), inside.len());
}
