"""The backend protocol lives in the core (`studio.core.artifact`), which runs backends without importing
them; this name stays for the backends' own imports."""

from studio.core.artifact import Artifact, Backend, BuildContext, Feeds, Predictor, artifact_size

__all__ = ["Artifact", "Backend", "BuildContext", "Feeds", "Predictor", "artifact_size"]
