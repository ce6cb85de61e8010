from ce_lab.render.style import COLORS, loss_styles


def test_each_loss_keeps_one_style_in_order_of_first_appearance():
    styles = loss_styles(["ce", "mse", "ce", "hinge"])
    assert list(styles) == ["ce", "mse", "hinge"]
    assert styles["ce"].color == COLORS[0] and styles["mse"].color == COLORS[1]
    assert styles["ce"].dash != styles["mse"].dash


def test_wrapped_colours_still_differ_by_dash():
    names = [f"l{i}" for i in range(11)]
    styles = loss_styles(names)
    assert styles["l0"].color == styles["l10"].color
    assert styles["l0"].dash != styles["l10"].dash
