"""HTML bodies turned into text staff can read."""

from commons_sync.mail.html_text import html_to_text


def test_blocks_lists_and_links_become_lines():
    html = """<html><head><title>ignoré</title><style>p {color: red}</style></head><body>
    <h1>Un four&nbsp;à   pain</h1><p>Bonjour,<br>voir <a href="https://example.org/four">la fiche</a>
    ou écrire à <a href="mailto:four@example.org">four@example.org</a>.</p>
    <ol><li>devis</li><li>planning</li></ol><script>alert("non")</script>
    <table><tr><th>Poste</th><th>Montant</th></tr><tr><td>Four</td><td>900 €</td></tr></table>
    <pre>  garde
    la mise en page</pre><p>Fin</p></body></html>"""
    assert html_to_text(html) == (
        "Un four\xa0à pain\n\n"
        "Bonjour,\nvoir la fiche (https://example.org/four) ou écrire à four@example.org.\n\n"
        "1. devis\n2. planning\n\n"
        "Poste | Montant\nFour | 900 €\n\n"
        "  garde\n    la mise en page\n\n"
        "Fin"
    )


def test_broken_markup_gives_its_text():
    assert html_to_text("<p>non fermé <b>gras <i>italique") == "non fermé gras italique"
    assert html_to_text("<div>a</div><div>b</div>") == "a\nb"
    assert html_to_text("") == ""
