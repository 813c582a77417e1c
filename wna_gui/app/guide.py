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
blocks, against the number of samples; it approaches 1 as a map stops changing. The race curve per estimator
is the mean over <i>all</i> classes, a class without a map or with r &lt; 0 counting as 0, so estimators compare
and a curve never falls because a new class appears. The facts line, <tt>wna info</tt> and the report give
the mean over the classes that have a map, with how many have none ("8 classes have no map"): two converged
hard-label maps read ≈0.9, not 0.2.</li>
<li><b>Estimators</b>: the <b>hard label</b> map (the paper's) exists only for classes noise lands in. The
<b>logit kernel</b> (noise weighted by each class's logit), <b>probability-weighted</b> (by its softmax
probability), <b>gradient</b> (mean input gradient of the logit) and <b>signal + noise</b> (digits shown
through noise) give every class a map. <i>r=</i> in a tile title is that map's reliability.</li>
<li><b>Colour limits</b>: one scale for all maps, from the 99.5th percentile of |map − centre| over classes
with at least 1% of the largest class's samples (a class seen twice is nearly raw noise); or set by hand.
Display also offers the colour map and hiding classes without a map.</li>
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
<li>The fit is ψ = guess + (1 − guess − lapse)·F(γ): <b>guess</b> is the floor (performance on pure noise;
a free guess is fitted in [0, 1 − lapse), since a network can call most noise one digit: digit 8's floor is ≈0.9),
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

<h3>Bias-map analyses</h3>
<ul>
<li><b>Template classifier</b> (Fig. 2C): digits are classified by the map with the largest dot product;
bars give accuracy with Wilson 95% intervals beside chance and the paper's values; confusion matrices count
true class (rows) against prediction (columns). Class-mean images and logistic-regression weights are the
references.</li>
<li><b>Two-class images</b> (Fig. 1): a binary network sees digit plus noise; Ahumada's image
c = (n̄12 + n̄22) − (n̄11 + n̄21) averages the noise by stimulus and response cell (counts shown). By default a
short pilot run picks the γ range where all four cells fill (recorded with the run).</li>
<li><b>Sample complexity</b>: split-half reliability against samples for white and structured noise (Gabor-PCA,
autoencoder, VAE samples). Structured noise has correlated pixels, so its reliability rises even for an observer
with no signal at all (dashed: a signal-free observer on the same noise reaches ≈0.8 at 1,000 Gabor-PCA samples).
Compare stimulus types on the <i>excess</i> over that observer and on the cosine of a known-template observer's
maps with its templates, not on where the raw curves cross 0.8; structured noise converges faster only where
the excess says so.</li>
</ul>

<h3>Adversarial uses</h3>
<p>A classification image needs only the network's answers, so it is a black-box probe. <b>Bias-map
attack</b>: the fraction of noise or digits classified as a target once its map is mixed in with weight γ,
beside mean images and the paper's Table 2. <b>Backdoor</b>: a poisoned copy's map reveals the trigger patch
(outlined); the score is the patch's z against the rest, compared with the input gradient and spectral
signatures. A clean map has strong windows too (the digits' shapes), so "detected" means the poisoned map's
strongest patch-sized window (dashed) lies on the patch and beats every window of the clean twin's map; a
poisoning the model did not learn is reported as such. <b>Activation injection</b>: the mean activation of noise
called class c mixed into real digits at a layer (real images counted per class; a class mean from fewer than 30
noise images is flagged).</p>

<h3>Robustness lab</h3>
<p>Accuracy against the level of a distortion (Gaussian noise variance, blur σ, FGSM/IFGSM ε) is a
psychometric curve: the <b>threshold</b> is the level halfway between clean accuracy and chance.
<b>κ</b> (Cohen's kappa of errors) is 1 when two models err on the same images and 0 when they agree only as
often as their accuracies imply. Defended models (fine-tuned, distilled, slept, noisy ResNets) are trained in
the Defences tab and stored in the session, each stage for 1,200 SGD steps by default (the papers' 2 epochs),
with its held-out accuracy measured as this lab measures clean accuracy. Test and training images are seeded,
class-stratified subsets. A threshold beyond the levels measured reads "&gt; max" (▶ on the plot), never an
extrapolated value; a model below twice chance is <b>at chance</b> and gets no threshold or κ. FGSM and IFGSM
are also run on logits/T of a distilled model and from the session's control (transfer): the curve is the
strongest attack, and <b>gradient masking suspected</b> marks a model whose own-gradient attack is much weaker
or whose input gradient is zero on most images.</p>

<h3>Figures for a paper</h3>
<p>File &gt; Export asks for the figure width (single column 85 mm, 1.5 columns 114 mm, double column
174 mm) and the PNG resolution; text is 8 pt at that width, PDF and SVG are that size, maps are embedded
losslessly at their native pixels. Titles name the model, the noise and the number of samples.</p>

<h3>Runs and comparisons</h3>
<p>A session keeps every run: a new run (changed settings, or <b>New run</b> in the Runs list) never replaces
one, it gets a name of its own (<tt>classification_images-2</tt>). The <b>Runs</b> list (View &gt; Runs list)
shows each run's experiment, progress, dates and model; selecting a run shows it in its panel, where Start
continues it. Rename (F2), Duplicate settings (a new empty run with its settings), Delete (Del; asks first)
and Continue work on the selected run. <b>Compare runs</b> (select two, or View &gt; Compare runs) shows two
runs, or two sources of one run (two estimators, the clean and the poisoned model, two models of a robustness
run), side by side: maps on one colour scale, curves on shared axes, tables cell by cell, with the difference
A − B wherever the shapes match.</p>

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
