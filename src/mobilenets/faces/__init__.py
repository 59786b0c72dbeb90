"""Faces: crop the face before the classifier sees it, and the face-attribute data.

    report = crop_faces_in_folder("photos/", "photos-faces/", margin=0.2)

Three concerns, all for the seed article's two face models (gender on
IMDB-WIKI with MobileNet V1 0.5-224, emotion with MobileNet V2 1.4-224):

- `FaceCropper` finds the largest face with OpenCV's bundled Haar cascade,
  crops it with a margin and falls back to the whole image when it finds
  none; `crop_faces_in_folder` and `face_cropped` apply it to a whole
  image-folder tree.
- `load_imdb_wiki` / `imdb_wiki_to_folder` / `gender_dataset` read the
  IMDB-WIKI release and write it as a `female/ male/` folder tree; they live
  in `mobilenets.imdb_wiki` (below `data`, which opens .mat files through
  them) and are re-exported here.
- `PRESETS` holds the emotion and gender training settings.

The package, one module per concern, each importing only those above it here:

    detect    `FaceCropper`: find the largest face, crop it with a margin
    folders   face-cropped copies of folder trees, cached per dataset
    presets   `FacePreset`, `PRESETS`, `get_preset`
"""

from mobilenets.faces.detect import CASCADE, FaceCropper
from mobilenets.faces.folders import crop_faces_in_folder, face_cropped
from mobilenets.faces.presets import EMOTION_CLASSES, PRESETS, FacePreset, get_preset
from mobilenets.imagetree import as_rgb, expand_box
from mobilenets.imdb_wiki import (GENDER_CLASSES, FaceRecord, find_mat, gender_dataset, imdb_wiki_to_folder,
                                  load_imdb_wiki)

__all__ = ["CASCADE", "FaceCropper", "crop_faces_in_folder", "face_cropped", "EMOTION_CLASSES", "PRESETS",
           "FacePreset", "get_preset", "as_rgb", "expand_box", "GENDER_CLASSES", "FaceRecord", "find_mat",
           "gender_dataset", "imdb_wiki_to_folder", "load_imdb_wiki"]
