"""Image data: class folders, built-in datasets and a fast tf.data pipeline.

    data = open_dataset("photos/")   # or "digits", "cifar10", "cifar10:PATH", "photos.tar.gz"
    train = data.dataset("train", (224, 224), shuffle=True, augment=Augment.parse("flip"), seed=0)

An `ImageFolder` is a directory with one sub-folder per class (images found
recursively inside each), either already split (`train/`, `val/` or
`validation/`, `test/`, each holding the class folders) or split here by a
stable hash of each file name, exactly as TF-Hub's `retrain.py` does: a file
stays in its split when more images are added, and `name_nohash_2.jpg` lands
with `name_nohash_1.jpg`.

Files are checked cheaply while scanning (empty files and files that are not
images are skipped) and each is decoded once, in a thread pool, when a split
is first asked for at an image size; a file that fails to decode (truncated,
corrupt) is skipped then. Skipped files are listed with their reason in
`report()`; `verify()` decodes everything up front for a complete report.

A decoded split is an `ImageSplit` (`stream()`): uint8 images held in memory,
or, with a cache folder, decoded chunk by chunk into a .npy there and read
back a batch at a time, so memory does not grow with the split. `dataset()`
serves it through tf.data with shuffling, augmentation as TF ops
(`mobilenets.augment`), batching and prefetching.

The package, one module per concern, each importing only those above it here:

    images     one file to pixels: extensions, sniffing, decoding, resizing
    store      `ImageSplit`: a decoded split in memory or in a .npy on disk, read in batches
    pipeline   images (arrays or `ImageSplit`s) through tf.data
    base       `ImageData` (what every dataset offers) and the hash split
    folder     `ImageFolder`
    builtins   digits and CIFAR-10 in memory
    archives   safe tar extraction, once, under the cache folder (`env.cache_home`)
    sources    `open_dataset` by name, folder, archive or IMDB-WIKI .mat
"""

from mobilenets.data.images import (IMAGE_EXTENSIONS, RESIZE_MODES, BadImage, ImageTooLarge, load_image,
                                    resize_images)
from mobilenets.data.store import DiskImages, ImageSplit, MemoryImages
from mobilenets.data.pipeline import batch_dataset, make_dataset
from mobilenets.data.base import (SPLITS, SPLIT_FOLDERS, MAX_NUM_IMAGES_PER_CLASS, MIN_IMAGES_PER_CLASS,
                                  which_set, ImageData)
from mobilenets.data.folder import CACHE_VERSION, ImageFolder
from mobilenets.data.builtins import CIFAR10_CLASSES, DIGITS_SEED, ArrayDataset, BUILTINS, load_builtin
from mobilenets.data.archives import cache_home, extract_archive, safe_extract
from mobilenets.data.sources import open_dataset, resolved_data, run_data

__all__ = ["IMAGE_EXTENSIONS", "RESIZE_MODES", "BadImage", "ImageTooLarge", "load_image", "resize_images",
           "DiskImages", "ImageSplit", "MemoryImages", "batch_dataset", "make_dataset",
           "SPLITS", "SPLIT_FOLDERS", "MAX_NUM_IMAGES_PER_CLASS", "MIN_IMAGES_PER_CLASS", "which_set",
           "ImageData", "CACHE_VERSION", "ImageFolder", "CIFAR10_CLASSES", "DIGITS_SEED", "ArrayDataset",
           "BUILTINS", "load_builtin", "cache_home", "extract_archive", "safe_extract", "open_dataset",
           "resolved_data", "run_data"]
