"""The code MLflow loads a detector model from ("models from code": no pickled object in
the model folder). It names the pyfunc class; the state is the model's ``detector``
artifact (orchestrator.models.pyfunc)."""

import mlflow.models

from orchestrator.models.pyfunc import DetectorModel

mlflow.models.set_model(DetectorModel())
