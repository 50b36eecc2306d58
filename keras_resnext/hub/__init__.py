"""keras-hub integration: ResNeXt as a keras-hub backbone, image converter, preprocessor and classifier.

    pip install "keras-resnext[hub]"

    classifier = ResNeXtImageClassifier.from_preset("resnext50_32x4d.tv2_in1k")
    classifier.predict(raw_images)                     # preprocessing included
    classifier = ResNeXtImageClassifier.from_preset("resnext50_32x4d.tv2_in1k", num_classes=10)
    classifier.fit(dataset)
    classifier.save_to_preset("my_resnext")            # a folder keras_hub.upload_preset takes
    keras_hub.models.ImageClassifier.from_preset("my_resnext")   # a ResNeXtImageClassifier again

    backbone = ResNeXtBackbone.from_preset("resnext50_32x4d.tv2_in1k")
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=keras_hub.models.RetinaNetBackbone(image_encoder=backbone, min_level=3, max_level=7,
                                                    use_p5=False),
        num_classes=20,
    )

Presets are this package's registry tags (downloaded, verified and converted by the same
code as `weights=`), or anything keras-hub's own `from_preset` takes: preset folders,
`hf://` and `kaggle://` handles. Importing this module registers the classes, so
keras-hub's generic `Backbone.from_preset` / `ImageClassifier.from_preset` find them.
"""

from keras_resnext.hub.backbone import ResNeXtBackbone
from keras_resnext.hub.image_classifier import ResNeXtImageClassifier
from keras_resnext.hub.image_classifier_preprocessor import ResNeXtImageClassifierPreprocessor
from keras_resnext.hub.image_converter import ResNeXtImageConverter

__all__ = [
    "ResNeXtBackbone",
    "ResNeXtImageClassifier",
    "ResNeXtImageClassifierPreprocessor",
    "ResNeXtImageConverter",
]
