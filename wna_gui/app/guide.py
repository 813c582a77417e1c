"""Help > User guide: what each panel measures, how to read its plots, a glossary, the paper and how to cite it."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

PAPER_URL = "https://arxiv.org/abs/1912.12106"
CITATION = ("Ali Borji and Sikun Lin. White Noise Analysis of Neural Networks. "
            "International Conference on Learning Representations (ICLR), 2020.")

GUIDE_HTML = f"""
<h2>wna-gui user guide</h2>
<p>wna-gui probes a trained classifier the way a physiologist probes a neuron: it shows the network white
noise and averages what it answers. Every run is reproducible: noise is drawn from the seed alone, so the same
settings give the same maps, and a stopped run continues exactly where it stopped (Start again).</p>

<h3>Classification images</h3>
<p>Each noise image is classified; the images the network assigns to class <i>k</i> are averaged. That
average is class <i>k</i>'s <b>classification image</b> (or <b>bias map</b>): what the network "sees" in
noise when it answers <i>k</i>.</p>
<ul>
<li><b>mean</b>: the average noise of the class; <b>mean − grand mean</b>: minus the average of all noise;
<b>z-map</b>: that difference in standard errors, so |z| &gt; 1.96 marks pixels unlikely under chance.</li>
<li>Tile titles read <i>class · map→j · n=count</i>: the class, the class the network gives the map itself
(<i>map→j</i>, a self-consistency check: usually <i>j</i> is the class), and how many noise images it
averages. A grey tile has no samples yet.</li>
<li><b>Class frequency</b>: how often noise lands in each class (networks are strongly biased on noise).</li>
<li><b>Convergence</b>: split-half reliability, the correlation between maps from even and odd noise
blocks, against the number of samples; it approaches 1 as a map stops changing.</li>
<li><b>Weighting: softmax confidence</b> weights each noise image by the network's top softmax probability
instead of 1.</li>
</ul>

<h3>Psychometric curves</h3>
<p>Images of a target class are mixed with noise, <i>t = γ·s + (1 − γ)·n</i>, from pure noise (γ = 0) to the
clean image (γ = 1); the fraction classified as the target against γ is a psychometric curve. The noise is the
one chosen in the panel's Stimulus settings (uniform U[0, 1] by default).</p>
<ul>
<li><b>Microstimulation</b> (paper Eq. 6) raises (excite) or lowers (inhibit) each bias of a layer by
λ·k·ā, ā the map's mean activation for the target; one curve per level <i>k</i>. Curves moving left mean the
target is reported at weaker signal.</li>
<li>The fit is ψ = guess + (1 − guess − lapse)·F(γ): <b>guess</b> is the floor (performance on pure noise),
<b>lapse</b> the shortfall from 1 on clean images, <b>threshold</b> where F is halfway, <b>width</b> the span
from F = 0.05 to 0.95. 95% intervals resample the images (bootstrap). <b>p (GoF)</b> small means the sigmoid
fits the points poorly.</li>
<li><b>Small multiples</b> runs every class × layer (× sign) with each layer's paper λ, as the paper's Fig. 23.</li>
</ul>

<h3>Receptive fields</h3>
<p>Spike-triggered analysis of single units: for every unit of a layer, the noise in its receptive field
(derived from the layers' kernels, strides, padding and pooling) is averaged, weighted by the unit's activation
(<b>STA</b>). For the first conv layer the STA is compared with the learned kernel (cosine). <b>STC</b> finds
further directions the unit is sensitive to: eigenvalues of the spike-triggered covariance outside the band of a
shuffle null are significant. Activation maps show each layer's mean response per class, for noise and for real
digits.</p>

<h3>Glossary</h3>
<dl>
<dt>sample / stimulus</dt><dd>one noise image (classification images) / one image-plus-noise trial
(psychometric curves).</dd>
<dt>seed</dt><dd>fixes the noise: block <i>b</i> of a run is a function of (seed, <i>b</i>) alone.</dd>
<dt>batch size</dt><dd>noise images per block; a run keeps its block size to continue identically.</dd>
<dt>clip to [low, high]</dt><dd>Gaussian noise only: values outside the pixel range are set to its ends.</dd>
<dt>split-half reliability</dt><dd>Pearson correlation between maps from two independent halves of the noise.</dd>
</dl>

<h3>Without the app</h3>
<p>Run &gt; <i>Copy as wna command</i> copies the command that runs the current settings headless; sessions
(<code>.h5</code>) open in the app and with <code>wna info</code> / <code>wna export</code>.</p>

<h3>The paper</h3>
<p><a href="{PAPER_URL}">{PAPER_URL}</a><br>Please cite: {CITATION}</p>
"""


class GuideDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("wna-gui user guide")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(GUIDE_HTML)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(720, 640)
