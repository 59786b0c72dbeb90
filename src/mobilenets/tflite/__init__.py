"""The .tflite file contract: TFLite Metadata, our own entries, the labels zip.

    data = write_metadata(converted, ClassifierInfo("MobileNet v1-0.25-128", ["cat", "dog"]),
                          {LABELS_KEY: b"cat\\ndog\\n"})

A .tflite flatbuffer (`TFL3`) has named metadata entries. `TFLITE_METADATA`
is TFLite Support's standard metadata (`metadata_schema.fbs`, identifier
`M001`), read by MediaPipe Tasks, the LiteRT Support Library and Android
Studio: names, the input's image properties and normalization, the output's
labels file. `mobilenets_labels` (a label per line) and `mobilenets_config`
(JSON) are ours, and all that files exported before the standard metadata
have. Other entries (the converter's) are kept as they are.

The labels file is packed as TFLite Support's MetadataPopulator packs it: a
zip archive appended to the flatbuffer, offsets counted from the start of the
file. Flatbuffer readers ignore trailing bytes but re-packing drops them, so
`embed_metadata` re-attaches the archive. Only the tables a classifier needs
are written and read, by the schema's field slots; none is newer than schema
1.0.0, hence `min_parser_version` 1.0.0.

The contract also says what the input takes: our files take raw pixels
(`PIXEL_RANGE`), a model without our `preprocess` layer takes MobileNet's
`MOBILENET_RANGE`; and how a file is opened (`open_interpreter` to run it,
`graph_interpreter` to read its tensors). export writes files to this
contract and predict, profile and benchmark read them by it, so none of them
needs another's module for it.
"""

from mobilenets.tflite.container import as_bytes, attach_files, embed_metadata, read_metadata, split_zip
from mobilenets.tflite.reading import (CONFIG_KEY, LABELS_KEY, MOBILENET_RANGE, PIXEL_RANGE,
                                       graph_interpreter, labels_in, open_interpreter, parse_range)
from mobilenets.tflite.standard import (LABELS_FILE, METADATA_IDENTIFIER, METADATA_NAME,
                                        MIN_PARSER_VERSION, ClassifierInfo, parse_metadata,
                                        standard_metadata, write_metadata)

__all__ = ["CONFIG_KEY", "LABELS_FILE", "LABELS_KEY", "METADATA_IDENTIFIER", "METADATA_NAME",
           "MIN_PARSER_VERSION", "MOBILENET_RANGE", "PIXEL_RANGE", "ClassifierInfo", "as_bytes",
           "attach_files", "embed_metadata", "graph_interpreter", "labels_in", "open_interpreter",
           "parse_metadata", "parse_range", "read_metadata", "split_zip", "standard_metadata",
           "write_metadata"]
