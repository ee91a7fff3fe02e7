"""Models: `create_model(name, num_classes, in_chans, pretrained)` over one registry."""

from medclass.models import small_cnn, timm_models  # noqa: F401  (registers the models)
from medclass.core.architectures import cam_target_layer, create_model, list_models, model_entry, register_model

__all__ = ["cam_target_layer", "create_model", "list_models", "model_entry", "register_model"]
