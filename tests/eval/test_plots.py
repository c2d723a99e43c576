from PIL import Image

from fastdec.eval.plots import learning_curve_plot


def test_learning_curve_plot_writes_a_png(tmp_path):
    path = tmp_path / "figs" / "curve.png"
    learning_curve_plot({"a": [(2.0, 19.0), (4.5, 18.2)], "b": [(3.0, 17.5)]}, path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100
