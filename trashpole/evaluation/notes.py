"""
Plain-language notes the evaluation report adds to its numbers, as text that a Markdown or an
HTML report can show as it is.
"""

from typing import Any, Mapping, Optional


def accuracy_note(metrics: Mapping[str, Any]) -> Optional[str]:
    """
    What accuracy says on this data.

    The matching takes right-class hits first, so a wrong-class hit is left only where no
    right-class prediction could hit that object. When there is none, accuracy is 100 and says
    nothing more; the note tells the reader so.

    Args:
        metrics: the ``trashpole`` results (``hits`` and ``TP`` counts).

    Returns:
        one sentence, or None when accuracy is undefined (no hits; the report's undefined
        values say why).
    """
    hits, tp = metrics.get("hits"), metrics.get("TP")
    if not hits or tp is None:
        return None
    wrong = int(hits) - int(tp)
    if wrong == 0:
        return (
            "Accuracy is 100 because every hit already has the right class: no object was found "
            "only by a prediction of another class. It tells nothing more on this data; missed "
            "objects show in recall, false detections in precision."
        )
    return (
        f"Accuracy is below 100: {wrong} of {int(hits)} objects found with a good mask were "
        "found only by a prediction of another class (the off-diagonal cells of the confusion "
        "matrix)."
    )
